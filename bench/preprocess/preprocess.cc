// bench_preprocess: what turning media into model inputs costs, 1 thread.
// A 1920×1080 JPEG → CLIP tensor (decode + preprocess), seconds of audio →
// Whisper log-mel per second, audio decode + resample, and, in the same run,
// one clip-image inference at batch 1 (1 and 2 intra-op threads) so the
// ratio to the goal (preprocessing ≤ 10% of an inference) is measured side
// by side.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "backends/onnxruntime/onnxruntime_backend.h"
#include "model/model.h"
#include "model/repository.h"
#include "preprocess/audio.h"
#include "preprocess/image.h"

namespace {

using Clock = std::chrono::steady_clock;

// Median milliseconds of `run` over at least `seconds` and 5 runs.
template <typename F>
double MedianMs(F&& run, double seconds) {
  run();
  std::vector<double> times;
  auto start = Clock::now();
  while (times.size() < 5 ||
         std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    auto begin = Clock::now();
    run();
    times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - begin).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// A photo-like test image: smooth gradients plus noise, so JPEG has work.
cv::Mat PhotoLike(int width, int height) {
  cv::Mat image(height, width, CV_8UC3);
  std::mt19937 random(3);
  for (int y = 0; y < height; ++y) {
    auto* row = image.ptr<unsigned char>(y);
    for (int x = 0; x < width; ++x) {
      row[3 * x] = static_cast<unsigned char>((x * 255 / width + random() % 24) & 0xFF);
      row[3 * x + 1] = static_cast<unsigned char>((y * 255 / height + random() % 24) & 0xFF);
      row[3 * x + 2] = static_cast<unsigned char>(((x + y) % 256 + random() % 24) & 0xFF);
    }
  }
  return image;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_preprocess: media preprocessing cost vs one clip-image inference"};
  std::string repository = BRAID_DEFAULT_MODEL_REPOSITORY;
  double seconds = 2;
  app.add_option("-m,--model-repository", repository, "Model repository");
  app.add_option("--seconds", seconds, "Measuring time per figure");
  CLI11_PARSE(app, argc, argv);
  cv::setNumThreads(1);

  std::vector<unsigned char> jpeg;
  cv::imencode(".jpg", PhotoLike(1920, 1080), jpeg, {cv::IMWRITE_JPEG_QUALITY, 90});
  auto jpeg_bytes = std::as_bytes(std::span(jpeg.data(), jpeg.size()));
  std::vector<float> tensor(3 * 224 * 224);
  double decode_ms = MedianMs([&] { (void)braid::DecodeImage(jpeg_bytes); }, seconds);
  double full_ms = MedianMs(
      [&] {
        auto rgb = braid::DecodeImage(jpeg_bytes);
        (void)braid::ClipPreprocess(*rgb, tensor.data());
      },
      seconds);
  double image_ms = MedianMs(
      [&] {
        auto rgb = braid::DecodeImage(jpeg_bytes, {}, false, 224);
        (void)braid::ClipPreprocess(*rgb, tensor.data());
      },
      seconds);

  const double clip_seconds = 10;
  std::vector<float> speech(static_cast<std::size_t>(clip_seconds * braid::kSpeechRate));
  std::mt19937 random(5);
  std::normal_distribution<float> noise(0, 0.1f);
  for (auto& s : speech) s = noise(random);
  double mel_ms = MedianMs([&] { (void)braid::WhisperLogMel(speech); }, seconds);
  std::vector<float> at44k(static_cast<std::size_t>(clip_seconds * 44100));
  for (auto& s : at44k) s = noise(random);
  double resample_ms =
      MedianMs([&] { (void)braid::Resample(at44k, 44100, braid::kSpeechRate); }, seconds);

  auto config = braid::LoadModelConfig(std::filesystem::path(repository) / "clip-image");
  if (!config.ok()) {
    fmt::print(stderr, "bench_preprocess: {}\n", config.status().message());
    return 1;
  }
  fmt::print("| what | median ms | per second |\n|---|---:|---:|\n");
  fmt::print("| decode 1920×1080 JPEG ({} KB) | {:.2f} | {:.1f} images |\n", jpeg.size() / 1024,
             decode_ms, 1000 / decode_ms);
  fmt::print("| decode at full size + CLIP preprocess to [3,224,224] | {:.2f} | {:.1f} images |\n",
             full_ms, 1000 / full_ms);
  fmt::print(
      "| scaled JPEG decode + CLIP preprocess (what braid does) | {:.2f} | {:.1f} images |\n",
      image_ms, 1000 / image_ms);
  fmt::print("| Whisper log-mel of {:.0f} s (padded to 30 s) | {:.2f} | {:.0f} s of audio |\n",
             clip_seconds, mel_ms, clip_seconds * 1000 / mel_ms);
  fmt::print("| resample {:.0f} s 44.1 kHz → 16 kHz (soxr HQ) | {:.2f} | {:.0f} s of audio |\n",
             clip_seconds, resample_ms, clip_seconds * 1000 / resample_ms);
  auto factory = braid::MakeOnnxRuntimeBackend();
  for (int threads : {1, 2}) {
    config->instance_group.count = 1;
    config->instance_group.intra_op_threads = threads;
    auto instances = factory(*config, config->directory / "1");
    if (!instances.ok()) {
      fmt::print(stderr, "bench_preprocess: {}\n", instances.status().message());
      return 1;
    }
    braid::Model model(*config, 1, std::move(instances).value());
    auto input = *braid::Tensor::Allocate(braid::DataType::kFp32, {1, 3, 224, 224});
    std::copy(tensor.begin(), tensor.end(), input.mutable_span<float>().begin());
    std::vector<braid::Tensor> outputs;
    double infer_ms = MedianMs(
        [&] { (void)model.Execute(0, std::vector<braid::Tensor>{input}, &outputs); }, seconds);
    fmt::print(
        "| clip-image inference, batch 1, {} intra-op thread(s) | {:.2f} | {:.1f} images |\n",
        threads, infer_ms, 1000 / infer_ms);
    fmt::print(
        "\nimage preprocessing / clip-image inference ({} thread(s)): **{:.2f}** (goal ≤ 0.10)\n\n",
        threads, image_ms / infer_ms);
  }
  return 0;
}
