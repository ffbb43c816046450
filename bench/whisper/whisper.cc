// bench_whisper: what the whisper backend's decoding loop buys, measured
// side by side in one run on a Whisper-shaped stand-in of whisper-tiny's
// decoder sizes (d_model 384, 6 heads, 4 layers, a 51865-token vocabulary;
// onnxgen/whisper_graph.h), forced to say --tokens text tokens:
//   - decoding steps per second with the key/value cache
//     (decoder_with_past_model, one new token a step) and without it
//     (decoder_model re-run on the whole sequence each step), one clip;
//   - the same with the cache through decoder_model_merged.onnx alone (the
//     two decoders behind an If), against the two files;
//   - transcripts per second for --concurrency clips decoded as one batch
//     (sequences stepping together) and one after the other.
// Each figure is the median of --rounds, the variants taking turns. The
// stand-in's encoder is one convolution, lighter than whisper-tiny's four
// transformer layers: the figures are the decoder's. The script repeats
// five words, which Whisper's temperature fallback would decode five more
// times; the fallback is off here.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>

#include "backends/whisper/whisper_backend.h"
#include "model/config.h"
#include "onnxgen/whisper_graph.h"
#include "preprocess/audio_encoder.h"
#include "support/exit_on_error.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using Clock = std::chrono::steady_clock;

using testing::Check;
using testing::Fail;

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::unique_ptr<ModelInstance> Load(const std::filesystem::path& folder, bool cache) {
  const std::string yaml = fmt::format(R"(backend: whisper
max_batch_size: 64
inputs: [{{name: audio, datatype: BYTES, dims: [1]}}]
outputs:
  - {{name: text, datatype: BYTES, dims: [1]}}
  - {{name: language, datatype: BYTES, dims: [1]}}
  - {{name: segments, datatype: BYTES, dims: [1]}}
parameters: {{kv_cache: {}, max_new_tokens: 440, temperature_fallback: false}}
)",
                                       cache);
  auto config = Check(ParseModelConfig(yaml, "whisper", folder, "config.yaml"));
  auto instances = Check(MakeWhisperBackend(AudioLimits{})(config, folder / "1"));
  return std::move(instances.front());
}

// Seconds to transcribe `clips` as one batch, and the text tokens decoded.
double Transcribe(ModelInstance& instance, const std::vector<std::string>& clips) {
  auto audio = Check(Tensor::FromStrings(clips, {static_cast<std::int64_t>(clips.size()), 1}));
  std::vector<Tensor> outputs;
  const auto start = Clock::now();
  if (auto status = instance.Execute(std::span(&audio, 1), &outputs); !status.ok()) Fail(status);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Run(int tokens, int concurrency, int rounds) {
  onnxgen::WhisperStandIn spec;
  spec.d_model = 384;
  spec.heads = 6;
  spec.layers = 4;
  const std::vector<std::string> words = {"Ġthe", "Ġcat", "Ġsat", "Ġon", "Ġmat"};
  spec.words = words;
  spec.filler = 51865 - 256 - static_cast<std::int64_t>(words.size()) - 2 - 100 - 6 - 1501;
  spec.languages = {"en"};  // and 99 more codes, as many as Whisper knows
  for (int i = 1; i < 100; ++i)
    spec.languages.push_back(fmt::format("z{}{}", char('a' + i / 26), char('a' + i % 26)));
  spec.loud = {"<|en|>", "<|transcribe|>", "<|0.00|>"};
  for (int i = 0; i < tokens; ++i) spec.loud.push_back(words[i % words.size()]);
  spec.loud.push_back("<|5.00|>");
  spec.quiet = spec.loud;
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "1");
  fmt::print("writing the stand-in (vocabulary {}, d_model {}, {} layers)...\n",
             256 + words.size() + spec.filler + 2 + spec.languages.size() + 6 + 1501, spec.d_model,
             spec.layers);
  if (auto status = onnxgen::WriteWhisperStandIn(spec, dir.path() / "1"); !status.ok())
    Fail(status);
  auto cached = Load(dir.path(), true);
  auto uncached = Load(dir.path(), false);
  testing::TempDir merged_dir;
  std::filesystem::create_directories(merged_dir.path() / "1");
  for (const char* file : {"encoder_model.onnx", "decoder_model_merged.onnx", "tokenizer.json"})
    std::filesystem::copy_file(dir.path() / "1" / file, merged_dir.path() / "1" / file);
  auto merged = Load(merged_dir.path(), true);

  std::vector<float> samples(5 * kSpeechRate);
  for (std::size_t i = 0; i < samples.size(); ++i)
    samples[i] = 0.5f * static_cast<float>(std::sin(2 * M_PI * 440.0 * i / kSpeechRate));
  const std::string clip = EncodeWav(samples, kSpeechRate);
  // Tokens decoded: the opening timestamp, the text, the closing one, <|endoftext|>.
  const int steps = tokens + 3;

  std::vector<double> with_cache, without_cache, through_merged, batched, one_by_one;
  Transcribe(*cached, {clip});  // warm-up
  Transcribe(*merged, {clip});
  for (int round = 0; round < rounds; ++round) {
    with_cache.push_back(Transcribe(*cached, {clip}));
    without_cache.push_back(Transcribe(*uncached, {clip}));
    through_merged.push_back(Transcribe(*merged, {clip}));
    batched.push_back(Transcribe(*cached, std::vector<std::string>(concurrency, clip)));
    double sequential = 0;
    for (int c = 0; c < concurrency; ++c) sequential += Transcribe(*cached, {clip});
    one_by_one.push_back(sequential);
    fmt::print("round {}/{} done\n", round + 1, rounds);
  }
  const double cache_rate = steps / Median(with_cache);
  const double no_cache_rate = steps / Median(without_cache);
  const double merged_rate = steps / Median(through_merged);
  const double batch_rate = concurrency / Median(batched);
  const double serial_rate = concurrency / Median(one_by_one);
  fmt::print("\n| measure | figure |\n|---|---:|\n");
  fmt::print("| decoding steps/s, key/value cache ({} text tokens) | {:.1f} |\n", tokens,
             cache_rate);
  fmt::print("| decoding steps/s, no cache | {:.1f} |\n", no_cache_rate);
  fmt::print("| cache / no cache | **{:.2f}×** (goal ≥ 3) |\n", cache_rate / no_cache_rate);
  fmt::print("| decoding steps/s, key/value cache, decoder_model_merged.onnx | {:.1f} |\n",
             merged_rate);
  fmt::print("| merged / two decoder files | **{:.2f}×** |\n", merged_rate / cache_rate);
  fmt::print("| transcripts/s, {} clips as one batch | {:.2f} |\n", concurrency, batch_rate);
  fmt::print("| transcripts/s, {} clips one after the other | {:.2f} |\n", concurrency,
             serial_rate);
  fmt::print("| batched / one by one | **{:.2f}×** |\n", batch_rate / serial_rate);
  return 0;
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  CLI::App app{"bench_whisper: the whisper backend's key/value cache and batched decoding"};
  int tokens = 100, concurrency = 8, rounds = 3;
  app.add_option("--tokens", tokens, "Text tokens each transcript has")->check(CLI::Range(1, 400));
  app.add_option("--concurrency", concurrency, "Clips decoded together")->check(CLI::Range(1, 64));
  app.add_option("--rounds", rounds, "Rounds; figures are medians")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  return braid::Run(tokens, concurrency, rounds);
}
