#include "quantize/tool.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "core/file_util.h"
#include "core/npy.h"
#include "preprocess/image.h"
#include "scheduler/model_scheduler.h"

namespace braid::quantize {
namespace {

namespace fs = std::filesystem;

constexpr int kHistogramBins = 4096;
constexpr std::int64_t kVariableDim = 16;
constexpr std::int64_t kMaxSyntheticElements = 64 << 20;

bool IsImage(const fs::path& path) {
  static const std::set<std::string> kExtensions = {".png", ".jpg", ".jpeg", ".bmp", ".webp"};
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return kExtensions.count(extension) > 0;
}

// `tensor` with a batch dimension of 1 in front, unless it has one already.
Result<Tensor> WithBatch(Tensor tensor, const OnnxTensorInfo& input, const fs::path& file) {
  const auto rank = input.dims.size();
  if (tensor.shape().size() + 1 == rank) {
    Shape shape = tensor.shape();
    shape.insert(shape.begin(), 1);
    BRAID_ASSIGN_OR_RETURN(tensor, tensor.Reshape(std::move(shape)));
  }
  if (tensor.shape().size() != rank || tensor.shape()[0] != 1) {
    return InvalidArgument("{}: shape {} does not fit input '{}' {} as one sample", file.string(),
                           ShapeToString(tensor.shape()), input.name, ShapeToString(input.dims));
  }
  for (std::size_t d = 1; d < rank; ++d) {
    if (input.dims[d] >= 0 && input.dims[d] != tensor.shape()[d]) {
      return InvalidArgument("{}: shape {} does not fit input '{}' {}", file.string(),
                             ShapeToString(tensor.shape()), input.name, ShapeToString(input.dims));
    }
  }
  if (tensor.dtype() != input.datatype) {
    return InvalidArgument("{}: {} values, but input '{}' takes {}", file.string(),
                           DataTypeName(tensor.dtype()), input.name, DataTypeName(input.datatype));
  }
  return tensor;
}

Result<Sample> ImageSample(const fs::path& file, const OnnxTensorInfo& input) {
  const auto& dims = input.dims;
  const bool square = dims.size() == 4 && dims[1] == 3 && dims[2] > 0 && dims[2] == dims[3];
  if (input.datatype != DataType::kFp32 || !square) {
    return InvalidArgument(
        "{}: an image sample needs a model whose one input is FP32 [3,S,S]; "
        "'{}' is {} {}",
        file.string(), input.name, DataTypeName(input.datatype), ShapeToString(dims));
  }
  BRAID_ASSIGN_OR_RETURN(std::string bytes, ReadFile(file));
  auto rgb = DecodeImage(std::as_bytes(std::span(bytes.data(), bytes.size())));
  if (!rgb.ok()) return rgb.status().WithContext(file.string());
  BRAID_ASSIGN_OR_RETURN(Tensor tensor,
                         Tensor::Allocate(DataType::kFp32, {1, 3, dims[2], dims[3]}));
  BRAID_RETURN_IF_ERROR(
      ClipPreprocess(*rgb, tensor.mutable_span<float>().data(), static_cast<int>(dims[2])));
  return Sample{std::move(tensor)};
}

Result<std::vector<Sample>> TextSamples(const fs::path& file, const OnnxTensorInfo& input,
                                        const Tokenizer* tokenizer, std::size_t limit) {
  if (input.datatype != DataType::kInt64 || input.dims.size() != 2 || input.dims[1] <= 0) {
    return InvalidArgument(
        "{}: text samples need a model whose one input is INT64 token ids "
        "[L]; '{}' is {} {}",
        file.string(), input.name, DataTypeName(input.datatype), ShapeToString(input.dims));
  }
  if (!tokenizer) {
    return InvalidArgument(
        "{}: text samples need a tokenizer (--tokenizer FILE, or "
        "tokenizer.json beside the model)",
        file.string());
  }
  BRAID_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  std::vector<Sample> samples;
  std::istringstream lines(text);
  for (std::string line; samples.size() < limit && std::getline(lines, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto sample = TextSample(*tokenizer, line, input.dims[1]);
    if (!sample.ok()) return sample.status().WithContext(file.string());
    samples.push_back(std::move(*sample));
  }
  return samples;
}

// The row count of the initializer a Gather looks `input` up in, or 2.
std::int64_t IndexBound(const onnx::ModelProto& model, const std::string& input) {
  for (const auto& node : model.graph().node()) {
    if (node.op_type() != "Gather" || node.input_size() < 2 || node.input(1) != input) continue;
    for (const auto& tensor : model.graph().initializer()) {
      if (tensor.name() == node.input(0) && tensor.dims_size() > 0) {
        return std::max<std::int64_t>(tensor.dims(0), 1);
      }
    }
  }
  return 2;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// Groups `samples` into batches of `batch` (the last may be smaller).
Result<std::vector<std::vector<Tensor>>> Batches(const std::vector<Sample>& samples, int batch) {
  std::vector<std::vector<Tensor>> batches;
  for (std::size_t begin = 0; begin < samples.size(); begin += batch) {
    const std::size_t end = std::min(samples.size(), begin + batch);
    std::vector<Tensor> inputs;
    for (std::size_t k = 0; k < samples[begin].size(); ++k) {
      std::vector<const Tensor*> parts;
      for (std::size_t s = begin; s < end; ++s) parts.push_back(&samples[s][k]);
      BRAID_ASSIGN_OR_RETURN(Tensor joined, ConcatenateBatch(parts));
      inputs.push_back(std::move(joined));
    }
    batches.push_back(std::move(inputs));
  }
  return batches;
}

// The calibration copy of a checked model: its added outputs declare a type
// but no shape, which ONNX Runtime accepts and the checker would not.
Result<std::unique_ptr<OnnxModelRunner>> OpenProbe(const onnx::ModelProto& probe) {
  std::string bytes;
  if (!probe.SerializeToString(&bytes)) return Internal("cannot serialise the calibration model");
  return OpenOnnxModel(bytes);
}

// Folds each output row's cosine similarity and largest difference into `drift`.
void AddDrift(const Tensor& reference, const Tensor& candidate, Drift& drift, double& cosine_sum) {
  auto a = reference.span<float>();
  auto b = candidate.span<float>();
  const auto rows = reference.shape().empty() ? 1 : reference.shape()[0];
  if (rows <= 0 || a.size() != b.size()) return;
  const std::size_t width = a.size() / static_cast<std::size_t>(rows);
  for (std::int64_t r = 0; r < rows; ++r) {
    double dot = 0, norm_a = 0, norm_b = 0;
    bool finite = true;
    for (std::size_t k = r * width; k < (r + 1) * width; ++k) {
      finite = finite && std::isfinite(a[k]) == std::isfinite(b[k]);
      dot += double(a[k]) * b[k];
      norm_a += double(a[k]) * a[k];
      norm_b += double(b[k]) * b[k];
      const double error = std::abs(double(a[k]) - b[k]);
      drift.max_abs_error = std::isnan(error) ? INFINITY : std::max(drift.max_abs_error, error);
    }
    // A row that overflowed or became NaN in one model only is as far from
    // the other as a row can be.
    double cosine =
        norm_a > 0 && norm_b > 0 ? dot / std::sqrt(norm_a * norm_b) : (norm_a == norm_b ? 1 : 0);
    if (!finite || !std::isfinite(cosine)) cosine = -1;
    drift.min_cosine = std::min(drift.min_cosine, cosine);
    cosine_sum += cosine;
    ++drift.rows;
  }
}

}  // namespace

Result<Sample> TextSample(const Tokenizer& tokenizer, std::string_view text, std::int64_t length) {
  BRAID_ASSIGN_OR_RETURN(auto ids, tokenizer.Encode(text));
  ids.resize(static_cast<std::size_t>(length), 0);
  BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(DataType::kInt64, {1, length}));
  std::copy(ids.begin(), ids.end(), tensor.mutable_span<std::int64_t>().begin());
  return Sample{std::move(tensor)};
}

Result<std::vector<Sample>> LoadSamples(const fs::path& dir,
                                        const std::vector<OnnxTensorInfo>& inputs,
                                        const Tokenizer* tokenizer, std::size_t limit) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return NotFound("{}: the calibration folder does not exist", dir.string());
  }
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(dir, error)) entries.push_back(entry.path());
  std::sort(entries.begin(), entries.end());
  std::vector<Sample> samples;
  for (const auto& path : entries) {
    if (samples.size() >= limit) break;
    if (fs::is_directory(path, error)) {
      Sample sample;
      for (const auto& input : inputs) {
        const auto file = path / (input.name + ".npy");
        auto tensor = ReadNpy(file);
        if (!tensor.ok()) return tensor.status().WithContext(file.string());
        BRAID_ASSIGN_OR_RETURN(Tensor batched, WithBatch(std::move(*tensor), input, file));
        sample.push_back(std::move(batched));
      }
      samples.push_back(std::move(sample));
      continue;
    }
    const bool npy = path.extension() == ".npy";
    const bool text = path.extension() == ".txt";
    if (!npy && !text && !IsImage(path)) continue;
    if (inputs.size() != 1) {
      return InvalidArgument(
          "{}: the model takes {} inputs; give each sample as a folder of "
          "<input>.npy files",
          path.string(), inputs.size());
    }
    if (npy) {
      auto tensor = ReadNpy(path);
      if (!tensor.ok()) return tensor.status().WithContext(path.string());
      BRAID_ASSIGN_OR_RETURN(Tensor batched, WithBatch(std::move(*tensor), inputs[0], path));
      samples.push_back({std::move(batched)});
    } else if (text) {
      BRAID_ASSIGN_OR_RETURN(auto lines,
                             TextSamples(path, inputs[0], tokenizer, limit - samples.size()));
      for (auto& sample : lines) samples.push_back(std::move(sample));
    } else {
      BRAID_ASSIGN_OR_RETURN(Sample sample, ImageSample(path, inputs[0]));
      samples.push_back(std::move(sample));
    }
  }
  if (samples.empty()) {
    return InvalidArgument("{}: no samples (.npy, images, .txt or folders of <input>.npy)",
                           dir.string());
  }
  return samples;
}

Result<std::vector<Sample>> SyntheticSamples(const onnx::ModelProto& model,
                                             const std::vector<OnnxTensorInfo>& inputs, int count,
                                             std::uint32_t seed,
                                             const std::map<std::string, Shape>& declared) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<Sample> samples(count);
  for (auto& sample : samples) {
    for (const auto& input : inputs) {
      if (input.datatype == DataType::kBytes) {
        return InvalidArgument(
            "input '{}' takes strings, which braid cannot make up; give "
            "--calibration DIR with samples",
            input.name);
      }
      Shape shape = input.dims;
      const auto config = declared.find(input.name);
      const bool fits = config != declared.end() && config->second.size() + 1 == shape.size();
      for (std::size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] >= 0) continue;
        const std::int64_t given = fits && d > 0 ? config->second[d - 1] : -1;
        shape[d] = d == 0 ? 1 : given > 0 ? given : kVariableDim;
      }
      BRAID_ASSIGN_OR_RETURN(std::int64_t elements, ElementCount(shape));
      if (elements > kMaxSyntheticElements) {
        return InvalidArgument("input '{}' {} holds more than {} values per sample", input.name,
                               ShapeToString(shape), kMaxSyntheticElements);
      }
      BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(input.datatype, shape));
      if (input.datatype == DataType::kFp32) {
        for (auto& v : tensor.mutable_span<float>()) v = normal(random);
      } else if (input.datatype == DataType::kInt64 || input.datatype == DataType::kInt32) {
        std::uniform_int_distribution<std::int64_t> pick(0, IndexBound(model, input.name) - 1);
        if (input.datatype == DataType::kInt64) {
          for (auto& v : tensor.mutable_span<std::int64_t>()) v = pick(random);
        } else {
          for (auto& v : tensor.mutable_span<std::int32_t>()) {
            v = static_cast<std::int32_t>(pick(random));
          }
        }
      } else {
        BRAID_ASSIGN_OR_RETURN(tensor, RandomTensor(input.datatype, shape, random));
      }
      sample.push_back(std::move(tensor));
    }
  }
  return samples;
}

Result<Ranges> Calibrate(const onnx::ModelProto& model, const std::vector<Sample>& samples,
                         RangeMethod method, double percentile) {
  const auto tensors = ActivationsToCalibrate(model);
  BRAID_ASSIGN_OR_RETURN(auto runner, OpenProbe(WithOutputs(model, tensors)));
  std::map<std::string, std::size_t> index;  // activation → output position
  for (std::size_t k = 0; k < runner->outputs().size(); ++k) {
    index[runner->outputs()[k].name] = k;
  }
  auto each_value = [&](auto visit) -> Status {
    for (const auto& sample : samples) {
      BRAID_ASSIGN_OR_RETURN(auto outputs, runner->Run(sample));
      for (const auto& name : tensors) {
        const Tensor& values = outputs[index.at(name)];
        if (values.dtype() != DataType::kFp32) continue;
        for (float v : values.span<float>()) {
          if (std::isfinite(v)) visit(name, v);
        }
      }
    }
    return Status::Ok();
  };
  Ranges ranges;
  BRAID_RETURN_IF_ERROR(each_value([&](const std::string& name, float v) {
    auto [it, fresh] = ranges.try_emplace(name, Range{v, v});
    it->second.low = std::min(it->second.low, v);
    it->second.high = std::max(it->second.high, v);
  }));
  if (method == RangeMethod::kMinMax) return ranges;
  if (!(percentile > 50 && percentile <= 100)) {
    return InvalidArgument("the percentile must lie in (50, 100], not {}", percentile);
  }
  std::map<std::string, std::vector<std::uint64_t>> histograms;
  BRAID_RETURN_IF_ERROR(each_value([&](const std::string& name, float v) {
    auto& bins = histograms[name];
    if (bins.empty()) bins.resize(kHistogramBins);
    const Range& range = ranges.at(name);
    const double width = double(range.high) - range.low;
    const int bin =
        width > 0 ? std::min(kHistogramBins - 1, int((v - range.low) / width * kHistogramBins)) : 0;
    ++bins[bin];
  }));
  for (auto& [name, range] : ranges) {
    const auto& bins = histograms[name];
    std::uint64_t total = 0;
    for (auto count : bins) total += count;
    const double tail = total * (100 - percentile) / 100;
    const double width = (double(range.high) - range.low) / kHistogramBins;
    std::uint64_t seen = 0;
    int low_bin = 0;
    while (low_bin < kHistogramBins - 1 && seen + bins[low_bin] <= tail) seen += bins[low_bin++];
    seen = 0;
    int high_bin = kHistogramBins - 1;
    while (high_bin > 0 && seen + bins[high_bin] <= tail) seen += bins[high_bin--];
    const float low = static_cast<float>(range.low + low_bin * width);
    const float high = static_cast<float>(range.low + (high_bin + 1) * width);
    range = {low, std::max(low, high)};
  }
  return ranges;
}

Result<Comparison> Compare(std::string_view reference, std::string_view candidate,
                           const std::vector<Sample>& samples, int batch, int rounds) {
  BRAID_ASSIGN_OR_RETURN(auto first, OpenOnnxModel(reference));
  BRAID_ASSIGN_OR_RETURN(auto second, OpenOnnxModel(candidate));
  if (samples.empty()) return InvalidArgument("no samples to compare the models on");
  Comparison comparison;
  const auto& inputs = first->inputs();
  const bool batched = !inputs.empty() && !inputs[0].dims.empty() && inputs[0].dims[0] < 0;
  comparison.batch = batched ? std::max(1, batch) : 1;
  BRAID_ASSIGN_OR_RETURN(auto batches, Batches(samples, comparison.batch));
  double cosine_sum = 0;
  std::vector<double> first_ms, second_ms;
  using Clock = std::chrono::steady_clock;
  auto timed = [](OnnxModelRunner& runner, const std::vector<Tensor>& inputs,
                  std::vector<double>& times) -> Result<std::vector<Tensor>> {
    const auto start = Clock::now();
    auto outputs = runner.Run(inputs);
    times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    return outputs;
  };
  for (int round = 0; round < std::max(1, rounds); ++round) {
    for (const auto& inputs : batches) {
      BRAID_ASSIGN_OR_RETURN(auto a, timed(*first, inputs, first_ms));
      BRAID_ASSIGN_OR_RETURN(auto b, timed(*second, inputs, second_ms));
      if (round > 0) continue;
      if (a.size() != b.size()) {
        return InvalidArgument("the models have {} and {} outputs", a.size(), b.size());
      }
      for (std::size_t k = 0; k < a.size(); ++k) {
        if (a[k].dtype() == DataType::kFp32 && b[k].dtype() == DataType::kFp32) {
          AddDrift(a[k], b[k], comparison.drift, cosine_sum);
        }
      }
    }
  }
  if (comparison.drift.rows > 0) comparison.drift.mean_cosine = cosine_sum / comparison.drift.rows;
  comparison.reference_ms = Median(first_ms);
  comparison.candidate_ms = Median(second_ms);
  return comparison;
}

Result<Report> QuantizeFile(const Request& request,
                            const std::function<void(std::string_view)>& progress) {
  BRAID_ASSIGN_OR_RETURN(std::string original, ReadFile(request.input));
  auto parsed = ParseModel(original);
  if (!parsed.ok()) return parsed.status().WithContext(request.input.string());
  const onnx::ModelProto model = std::move(*parsed);
  BRAID_ASSIGN_OR_RETURN(auto runner, OpenOnnxModel(original));
  const auto& inputs = runner->inputs();

  Report report;
  std::error_code error;
  report.input_bytes = original.size();
  std::vector<Sample> calibration, measured;
  if (request.calibration) {
    TokenizerPtr tokenizer;
    const fs::path tokenizer_file =
        request.tokenizer.value_or(request.input.parent_path() / "tokenizer.json");
    if (request.tokenizer || fs::exists(tokenizer_file, error)) {
      BRAID_ASSIGN_OR_RETURN(tokenizer, LoadTokenizer(tokenizer_file));
    }
    BRAID_ASSIGN_OR_RETURN(
        auto samples, LoadSamples(*request.calibration, inputs, tokenizer.get(), request.samples));
    const std::size_t held = samples.size() < 2 ? 0 : std::max<std::size_t>(1, samples.size() / 4);
    measured.assign(samples.end() - held, samples.end());
    samples.resize(samples.size() - held);
    calibration = std::move(samples);
    if (measured.empty()) measured = calibration;
  } else {
    report.synthetic = true;
    const int count = static_cast<int>(std::max<std::size_t>(4, request.samples));
    BRAID_ASSIGN_OR_RETURN(calibration,
                           SyntheticSamples(model, inputs, count * 3 / 4, 1, request.declared));
    BRAID_ASSIGN_OR_RETURN(
        measured, SyntheticSamples(model, inputs, count - count * 3 / 4, 2, request.declared));
  }
  report.measured_samples = measured.size();

  Quantized quantized;
  switch (request.mode) {
    case Mode::kInt8Dynamic: {
      BRAID_ASSIGN_OR_RETURN(quantized, QuantizeDynamic(model, request.options));
      break;
    }
    case Mode::kInt8Static: {
      report.calibration_samples = calibration.size();
      progress(fmt::format("calibrating {} activations on {} {} samples ({})",
                           ActivationsToCalibrate(model).size(), calibration.size(),
                           report.synthetic ? "synthetic" : "given",
                           request.method == RangeMethod::kMinMax ? "min-max" : "percentile"));
      BRAID_ASSIGN_OR_RETURN(auto ranges,
                             Calibrate(model, calibration, request.method, request.percentile));
      BRAID_ASSIGN_OR_RETURN(quantized, QuantizeStatic(model, ranges, request.options));
      break;
    }
    case Mode::kFp16: {
      BRAID_ASSIGN_OR_RETURN(quantized, ConvertToFp16(model));
      break;
    }
  }
  report.nodes = quantized.nodes;
  BRAID_ASSIGN_OR_RETURN(std::string bytes, SerializeModel(quantized.model));
  progress(fmt::format("measuring on {} {} samples: drift and speed, batch {}, {} rounds",
                       measured.size(), report.synthetic ? "synthetic" : "held-aside",
                       request.batch, request.rounds));
  BRAID_ASSIGN_OR_RETURN(report.comparison,
                         Compare(original, bytes, measured, request.batch, request.rounds));
  const double drift = 1 - report.comparison.drift.mean_cosine;
  if (!(drift <= request.max_drift)) {
    return MakeStatus(StatusCode::kFailedPrecondition,
                      "the {} model drifts {:.4f} from the original (1 − mean cosine similarity, "
                      "worst {:.4f}), past --max-drift {}: not written",
                      ModeName(request.mode), drift, 1 - report.comparison.drift.min_cosine,
                      request.max_drift);
  }
  // Written beside and renamed, so that a server never loads half a file.
  const fs::path partial = request.output.string() + ".partial";
  BRAID_RETURN_IF_ERROR(WriteFile(partial, bytes));
  fs::rename(partial, request.output, error);
  if (error) {
    return Internal("cannot move {} to {}: {}", partial.string(), request.output.string(),
                    error.message());
  }
  report.output_bytes = bytes.size();
  return report;
}

}  // namespace braid::quantize
