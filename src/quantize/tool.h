// What `braid quantize` does around the graph rewrites (quantize.h): the
// sample inputs it calibrates and measures on, the calibration itself, and
// the comparison of the result with the original (output drift and speed,
// measured side by side in one run) that decides whether it is written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backends/onnxruntime/onnxruntime_backend.h"
#include "core/tensor.h"
#include "preprocess/tokenizer.h"
#include "quantize/quantize.h"

namespace braid::quantize {

// One input set of a model, batch 1, in the model's input order.
using Sample = std::vector<Tensor>;

// `text` as token ids [1, length], padded with 0 or cut.
Result<Sample> TextSample(const Tokenizer& tokenizer, std::string_view text, std::int64_t length);

// Samples from the files of `dir` (sorted by name; at most `limit`):
//   - `*.npy`, for a model of one input: one sample each, with or without
//     the batch dimension;
//   - sub-folders holding `<input name>.npy` for every input: one sample each;
//   - images (.png .jpg .jpeg .bmp .webp), for a model whose one input is
//     FP32 [N, 3, S, S]: CLIP's preprocessing at S, as the server applies it;
//   - `*.txt`, for a model whose one input is INT64 token ids [N, L]: each
//     non-empty line one sample, encoded by `tokenizer`.
// InvalidArgument when a file does not fit the model, or nothing is found.
Result<std::vector<Sample>> LoadSamples(const std::filesystem::path& dir,
                                        const std::vector<OnnxTensorInfo>& inputs,
                                        const Tokenizer* tokenizer, std::size_t limit);

// `count` samples of seeded random values: FP32 from a normal distribution;
// integers below the row count of the table a Gather looks them up in (token
// ids), else 0 or 1. A variable batch dimension is 1; another variable
// dimension takes its size from `declared` (an input's dims without the
// batch, as a model's config gives them) when that fixes it, else 16.
// InvalidArgument for string inputs and past 64 Mi values per input.
Result<std::vector<Sample>> SyntheticSamples(const onnx::ModelProto& model,
                                             const std::vector<OnnxTensorInfo>& inputs, int count,
                                             std::uint32_t seed,
                                             const std::map<std::string, Shape>& declared = {});

enum class RangeMethod { kMinMax, kPercentile };

// The range of every activation static quantization needs, over `samples`:
// the extremes (min-max) or the `percentile` and 100 − `percentile`
// percentiles of the values (a histogram of 4096 bins per activation, over
// a second run of the samples).
Result<Ranges> Calibrate(const onnx::ModelProto& model, const std::vector<Sample>& samples,
                         RangeMethod method, double percentile);

struct Drift {
  double mean_cosine = 1;  // over every FP32 output row (batch item) of every sample
  double min_cosine = 1;
  double max_abs_error = 0;
  std::size_t rows = 0;
};

struct Comparison {
  Drift drift;
  int batch = 1;
  double reference_ms = 0;  // median time of one batch
  double candidate_ms = 0;
  double speedup() const { return candidate_ms > 0 ? reference_ms / candidate_ms : 0; }
};

// Runs both models on `samples` in batches of `batch` (1 when the model's
// batch dimension is fixed): their outputs' drift, and the median time per
// batch over `rounds` rounds, the two models alternating batch by batch.
Result<Comparison> Compare(std::string_view reference, std::string_view candidate,
                           const std::vector<Sample>& samples, int batch, int rounds);

struct Request {
  std::filesystem::path input;
  std::filesystem::path output;
  Mode mode = Mode::kInt8Dynamic;
  std::optional<std::filesystem::path> calibration;  // samples folder
  std::optional<std::filesystem::path> tokenizer;    // for .txt samples
  RangeMethod method = RangeMethod::kMinMax;
  double percentile = 99.99;
  std::size_t samples = 64;  // read or made, calibration and held-aside together
  int batch = 8;
  int rounds = 5;
  double max_drift = 0.01;  // the most 1 − mean cosine similarity accepted
  // Inputs' dims without the batch (a repository model's config), for the
  // synthetic samples of a file whose dims are variable.
  std::map<std::string, Shape> declared;
  Options options;
};

struct Report {
  int nodes = 0;
  std::size_t calibration_samples = 0;
  std::size_t measured_samples = 0;
  bool synthetic = false;
  Comparison comparison;
  std::uintmax_t input_bytes = 0;
  std::uintmax_t output_bytes = 0;
};

// Quantizes request.input as asked and measures the result against it on
// samples held aside from calibration (a quarter of those read, at least
// one; fresh synthetic ones without a folder). Writes request.output only
// when the drift is within request.max_drift: FailedPrecondition otherwise.
// `progress` hears each step.
Result<Report> QuantizeFile(const Request& request,
                            const std::function<void(std::string_view)>& progress);

}  // namespace braid::quantize
