// bench_near_duplicates: perceptual cache keys (issue 27) on a generated
// trace of image requests, 40 % distinct images (seeded pictures and pages
// of text, JPEG quality 90) and 60 % near duplicates of earlier ones: a new
// JPEG of quality 50–95, scaled 80–120 %, up to 3 % cut from each side, or
// the same JPEG with a comment segment added (metadata changed, pixels not).
// In process: how many requests the exact and the perceptual keys would
// hit, false hits (a request given another image's key), and what a
// perceptual key costs beside an OCR miss. With --write DIR it also writes
// the trace as workflow request bodies (DIR/NNNN.json) and DIR/trace.tsv
// (request, original, distinct|near) for run.sh to send over HTTP.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <unordered_set>

#include "backends/backends.h"
#include "cache/perceptual_index.h"
#include "core/base64.h"
#include "core/compute_budget.h"
#include "model/repository.h"
#include "preprocess/image.h"

namespace braid {
namespace {

using Wall = std::chrono::steady_clock;

// A seeded gradient between two colours with a few shapes on it.
cv::Mat Picture(std::mt19937& random) {
  auto colour = [&] { return cv::Scalar(random() % 256, random() % 256, random() % 256); };
  cv::Mat bgr(480, 640, CV_8UC3);
  const cv::Scalar from = colour(), to = colour();
  for (int y = 0; y < bgr.rows; ++y) bgr.row(y).setTo(from + (to - from) * (double(y) / bgr.rows));
  for (int shape = 0, shapes = 2 + random() % 4; shape < shapes; ++shape) {
    const cv::Point corner(random() % 640, random() % 480);
    if (random() % 2) {
      cv::circle(bgr, corner, 15 + random() % 90, colour(), cv::FILLED);
    } else {
      cv::rectangle(bgr, corner, corner + cv::Point(20 + random() % 200, 20 + random() % 150),
                    colour(), cv::FILLED);
    }
  }
  return bgr;
}

// A page of seeded words, dark on light, every page in the same layout.
cv::Mat Page(std::mt19937& random) {
  static const char* kWords[] = {"invoice", "total", "due",    "march",  "payment", "the",
                                 "order",   "ship",  "to",     "from",   "amount",  "tax",
                                 "meeting", "room",  "friday", "report", "draft",   "final"};
  cv::Mat bgr(600, 800, CV_8UC3, cv::Scalar(250, 250, 250));
  for (int line = 0; line < 11; ++line) {
    std::string text;
    while (text.size() < 36) text += std::string(kWords[random() % std::size(kWords)]) + " ";
    cv::putText(bgr, text, cv::Point(30, 60 + line * 48), cv::FONT_HERSHEY_SIMPLEX, 1.0,
                cv::Scalar(20, 20, 20), 2);
  }
  return bgr;
}

std::string Jpeg(const cv::Mat& bgr, int quality) {
  std::vector<unsigned char> bytes;
  cv::imencode(".jpg", bgr, bytes, {cv::IMWRITE_JPEG_QUALITY, quality});
  return std::string(bytes.begin(), bytes.end());
}

// A near duplicate of `original` (JPEG bytes): re-encoded, scaled and
// cropped, or only its metadata changed.
std::string NearDuplicate(const std::string& original, std::mt19937& random) {
  if (random() % 5 == 0) {
    // A comment segment after the start-of-image marker: other bytes, the
    // same pixels (as when a phone or chat app rewrites EXIF).
    const std::string comment = "edited " + std::to_string(random());
    std::string segment = "\xFF\xFE";
    segment += static_cast<char>((comment.size() + 2) >> 8);
    segment += static_cast<char>((comment.size() + 2) & 0xFF);
    return original.substr(0, 2) + segment + comment + original.substr(2);
  }
  cv::Mat bgr =
      cv::imdecode(std::vector<unsigned char>(original.begin(), original.end()), cv::IMREAD_COLOR);
  std::uniform_real_distribution<double> crop(0.0, 0.03), scale(0.8, 1.2);
  const int left = static_cast<int>(bgr.cols * crop(random));
  const int right = static_cast<int>(bgr.cols * crop(random));
  const int top = static_cast<int>(bgr.rows * crop(random));
  const int bottom = static_cast<int>(bgr.rows * crop(random));
  cv::Mat cropped = bgr(cv::Rect(left, top, bgr.cols - left - right, bgr.rows - top - bottom));
  cv::Mat scaled;
  const double factor = scale(random);
  cv::resize(cropped, scaled, cv::Size(), factor, factor,
             factor < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  return Jpeg(scaled, 50 + random() % 46);
}

struct Request {
  std::string bytes;
  std::size_t original;  // the distinct image it is or copies
  bool near = false;
};

// `distinct` images, half pictures and half pages, each followed later by
// near duplicates (`near` in all) of images already sent.
std::vector<Request> Trace(std::size_t distinct, std::size_t near, std::uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<std::string> originals;
  for (std::size_t i = 0; i < distinct; ++i)
    originals.push_back(Jpeg(i % 2 ? Page(random) : Picture(random), 90));
  std::vector<Request> trace;
  std::size_t sent = 0, copies = 0;
  while (sent < distinct || copies < near) {
    const std::size_t left = (distinct - sent) + (near - copies);
    const bool copy = sent > 0 && copies < near && random() % left >= distinct - sent;
    if (copy) {
      const std::size_t original = random() % sent;
      trace.push_back({NearDuplicate(originals[original], random), original, true});
      ++copies;
    } else {
      trace.push_back({originals[sent], sent, false});
      ++sent;
    }
  }
  return trace;
}

double Median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

void WriteTrace(const std::vector<Request>& trace, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream tsv(dir / "trace.tsv");
  for (std::size_t i = 0; i < trace.size(); ++i) {
    std::ofstream body(dir / fmt::format("{:04}.json", i));
    body << R"({"inputs":{"image":"data:image/jpeg;base64,)" << Base64Encode(trace[i].bytes)
         << R"("},"response_mode":"blocking"})";
    tsv << fmt::format("{:04}\t{}\t{}\n", i, trace[i].original,
                       trace[i].near ? "near" : "distinct");
  }
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  using namespace braid;
  KeepEnginesSingleThreaded(argv);
  CLI::App app{"bench_near_duplicates: perceptual cache keys on a trace of near-duplicate images"};
  std::size_t distinct = 100, near = 150;
  std::uint32_t seed = 1;
  std::string repository_dir = BRAID_DEFAULT_MODEL_REPOSITORY, write;
  int ocr_samples = 20;
  app.add_option("--distinct", distinct, "Distinct images in the trace")->capture_default_str();
  app.add_option("--near", near, "Near duplicates in the trace")->capture_default_str();
  app.add_option("--seed", seed, "Seed of the trace")->capture_default_str();
  app.add_option("-m,--model-repository", repository_dir, "Model repository (for the ocr model)");
  app.add_option("--ocr-samples", ocr_samples, "Images OCR reads for the miss's cost")
      ->capture_default_str();
  app.add_option("--write", write, "Also write the trace as workflow request bodies here");
  CLI11_PARSE(app, argc, argv);

  const auto trace = Trace(distinct, near, seed);
  if (!write.empty()) WriteTrace(trace, write);

  // Keys as the executor gives them: bytes seen before, else a fingerprint.
  PerceptualIndex index;
  // Which distinct image each key stands for: a request keyed by itself
  // owns its key.
  std::unordered_map<Hash128, std::size_t, Hash128Hasher> owner;
  std::unordered_set<Hash128, Hash128Hasher> seen;
  std::size_t exact_hits = 0, perceptual_hits = 0, false_hits = 0, near_missed = 0;
  std::vector<double> costs;
  for (const auto& request : trace) {
    const auto start = Wall::now();
    const Hash128 exact = Hasher().Add(request.bytes).Finish();
    std::optional<Hash128> key = index.Known(exact);
    if (!key) {
      auto rgb = DecodeImage(std::as_bytes(std::span(request.bytes.data(), request.bytes.size())),
                             {}, false, kFingerprintShortSide);
      key = index.KeyFor(exact, *Fingerprint(*rgb));
    }
    costs.push_back(std::chrono::duration<double, std::milli>(Wall::now() - start).count());
    exact_hits += !seen.insert(exact).second;
    if (*key == exact) {
      owner.emplace(exact, request.original);
      near_missed += request.near;
    } else if (owner.at(*key) == request.original) {
      ++perceptual_hits;
    } else {
      ++false_hits;
    }
  }

  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(repository_dir, backends);
  std::vector<double> ocr;
  if (Status s = repository.Load("ocr"); !s.ok()) {
    fmt::print(stderr, "bench_near_duplicates: {}\n", s.message());
    return 1;
  }
  auto model = *repository.Get("ocr");
  for (int i = 0; i < ocr_samples && i < static_cast<int>(trace.size()); ++i) {
    std::vector<Tensor> outputs;
    const auto start = Wall::now();
    const std::vector<Tensor> inputs = {*Tensor::FromStrings({trace[i].bytes}, {1})};
    if (Status s = model->Execute(0, inputs, &outputs); !s.ok()) {
      fmt::print(stderr, "bench_near_duplicates: ocr: {}\n", s.message());
      return 1;
    }
    ocr.push_back(std::chrono::duration<double, std::milli>(Wall::now() - start).count());
  }

  const PerceptualStats stats = index.Stats();
  const double requests = static_cast<double>(trace.size());
  fmt::print(
      "### In process: keys for a trace of {} requests ({} distinct images, {} near "
      "duplicates, seed {})\n\n",
      trace.size(), distinct, near, seed);
  fmt::print("| keys | hits | hit ratio | false hits |\n|---|---:|---:|---:|\n");
  fmt::print("| exact (bytes) | {} | {:.3f} | 0 |\n", exact_hits, exact_hits / requests);
  fmt::print("| perceptual | {} | {:.3f} | {} |\n", perceptual_hits, perceptual_hits / requests,
             false_hits);
  fmt::print(
      "\nNear duplicates keyed as new images (missed): {} of {}. Candidates within the "
      "hash's range: {} verified, {} rejected by their thumbnails.\n\n",
      near_missed, near, stats.verified, stats.rejected);
  fmt::print("| cost | p50 ms |\n|---|---:|\n");
  fmt::print(
      "| perceptual key (hash, decode at a short side of 128 or more, fingerprint, lookup) | "
      "{:.3f} |\n",
      Median(costs));
  fmt::print("| ocr model, the miss it saves (in process, {} images) | {:.3f} |\n", ocr.size(),
             Median(ocr));
  fmt::print("\nA perceptual key adds **{:.1f} %** to an OCR miss (goal ≤ 10 %).\n",
             100 * Median(costs) / Median(ocr));
  return 0;
}
