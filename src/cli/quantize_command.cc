// `braid quantize IN.onnx OUT.onnx` and `braid models quantize NAME`.
#include <fmt/core.h>

#include "cli/commands.h"
#include "model/config.h"
#include "model/repository.h"
#include "quantize/tool.h"

namespace braid::cli {
namespace {

namespace fs = std::filesystem;
using quantize::Mode;
using quantize::RangeMethod;

struct QuantizeOptions {
  std::string input;
  std::string output;
  std::string model;
  std::string repository;
  std::string calibration;
  std::string tokenizer;
  std::string range;
  quantize::Request request;
};

void AddSharedOptions(CLI::App* command, QuantizeOptions& options) {
  const std::map<std::string, Mode> modes = {{"int8-dynamic", Mode::kInt8Dynamic},
                                             {"int8-static", Mode::kInt8Static},
                                             {"fp16", Mode::kFp16}};
  const std::map<std::string, RangeMethod> methods = {{"minmax", RangeMethod::kMinMax},
                                                      {"percentile", RangeMethod::kPercentile}};
  auto& request = options.request;
  command
      ->add_option("--mode", request.mode,
                   "int8-dynamic: MatMul/Gemm weights to INT8 per channel, activations quantized "
                   "at run time; int8-static: QDQ with activation ranges from calibration; "
                   "fp16: weights and compute in FP16, FP32 inputs and outputs kept")
      ->transform(CLI::CheckedTransformer(modes, CLI::ignore_case))
      ->option_text("int8-dynamic|int8-static|fp16 (int8-dynamic)");
  command->add_option("--calibration", options.calibration,
                      "Folder of sample inputs: .npy files, images or .txt lines (one sample "
                      "each), or folders of <input>.npy; a quarter is held aside to measure the "
                      "drift. Without it, seeded random inputs are used");
  command->add_option("--tokenizer", options.tokenizer,
                      "tokenizer.json for .txt samples (default: the one beside the model)");
  command
      ->add_option("--method", request.method, "Calibration of int8-static: minmax or percentile")
      ->transform(CLI::CheckedTransformer(methods, CLI::ignore_case))
      ->option_text("minmax|percentile (minmax)");
  command
      ->add_option("--percentile", request.percentile,
                   "Percentile kept by --method percentile, above 50 and at most 100")
      ->default_val(99.99)
      ->check(CLI::Range(50.0, 100.0));
  command->add_option("--samples", request.samples, "Samples read or made, at most")
      ->default_val(64)
      ->check(CLI::Range(1, 100000));
  command->add_option("--batch", request.batch, "Batch size of the speed measurement")
      ->default_val(8)
      ->check(CLI::Range(1, 1024));
  command->add_option("--rounds", request.rounds, "Rounds of the speed measurement (median)")
      ->default_val(5)
      ->check(CLI::Range(1, 1000));
  command
      ->add_option("--max-drift", request.max_drift,
                   "Refuse to write a model whose outputs drift more than this: 1 − mean cosine "
                   "similarity to the original's")
      ->default_val(0.01)
      ->check(CLI::Range(0.0, 2.0));
  command
      ->add_option("--range", options.range,
                   "INT8 weights on 8 bits (full) or 7 (reduced: ONNX Runtime's x86 kernels "
                   "without VNNI add products in 16 bits, which full-range weights overflow); "
                   "auto: reduced unless this CPU has VNNI")
      ->check(CLI::IsMember({"auto", "full", "reduced"}))
      ->default_val("auto");
}

int Run(QuantizeOptions& options) {
  auto& request = options.request;
  if (!options.calibration.empty()) request.calibration = options.calibration;
  if (!options.tokenizer.empty()) request.tokenizer = options.tokenizer;
  request.options.reduce_range =
      options.range == "reduced" || (options.range == "auto" && !quantize::CpuHasVnni());
  auto report = quantize::QuantizeFile(
      request, [](std::string_view step) { fmt::print(stderr, "braid: {}\n", step); });
  if (!report.ok()) {
    fmt::print(stderr, "braid: {}\n", report.status().message());
    return 1;
  }
  const auto& c = report->comparison;
  const auto mode = quantize::ModeName(request.mode);
  fmt::print("{}: {} ({} {}{})\n", request.output.string(), mode, report->nodes,
             request.mode == Mode::kFp16 ? "tensors converted" : "MatMul/Gemm nodes quantized",
             request.mode == Mode::kFp16    ? ""
             : request.options.reduce_range ? ", weights on 7 bits"
                                            : ", weights on 8 bits");
  fmt::print(
      "drift on {} {} samples ({} output rows): cosine similarity mean {:.5f}, worst "
      "{:.5f}; max abs error {:.4g}\n",
      report->measured_samples, report->synthetic ? "synthetic" : "held-aside", c.drift.rows,
      c.drift.mean_cosine, c.drift.min_cosine, c.drift.max_abs_error);
  fmt::print("speed, batch {} (median of {} rounds): fp32 {:.3f} ms, {} {:.3f} ms: {:.2f}x\n",
             c.batch, request.rounds, c.reference_ms, mode, c.candidate_ms, c.speedup());
  fmt::print("size: {:.1f} MB -> {:.1f} MB\n", report->input_bytes / 1e6,
             report->output_bytes / 1e6);
  if (report->synthetic) {
    fmt::print(stderr,
               "braid: measured on seeded random inputs; give --calibration DIR with real "
               "samples for figures that mean something for your traffic\n");
  }
  return 0;
}

// Points `request` at NAME's newest version: its model file as the input,
// the file its config's precision serves as the output, and the config's
// input dims for the synthetic samples.
Status ForRepositoryModel(const fs::path& root, const std::string& name,
                          quantize::Request& request) {
  const fs::path directory = root / name;
  BRAID_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(directory));
  if (config.backend != kOnnxRuntimeBackend) {
    return InvalidArgument("{} has backend {}; braid quantizes onnxruntime models", name,
                           config.backend);
  }
  const auto versions = ListVersions(directory);
  if (versions.empty()) return NotFound("{}: no version folders", directory.string());
  const fs::path folder = directory / std::to_string(versions.back());
  const auto precision =
      request.mode == Mode::kFp16 ? Optimization::Precision::kFp16 : Optimization::Precision::kInt8;
  request.input = OnnxModelFile(config, folder, Optimization::Precision::kFp32);
  request.output = OnnxModelFile(config, folder, precision);
  for (const auto& input : config.inputs) request.declared[input.name] = input.dims;
  return Status::Ok();
}

}  // namespace

void AddQuantizeCommands(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<QuantizeOptions>();
  auto* file = app.add_subcommand(
      "quantize",
      "Write an INT8 or FP16 copy of an ONNX model, after measuring its drift from the original "
      "and its speed-up side by side");
  file->add_option("IN", options->input, "The ONNX model")->required()->check(CLI::ExistingFile);
  file->add_option("OUT", options->output, "Where the quantized model goes")->required();
  AddSharedOptions(file, *options);
  file->callback([options, exit_code] {
    options->request.input = options->input;
    options->request.output = options->output;
    *exit_code = Run(*options);
  });

  auto* named = app.get_subcommand("models")->add_subcommand(
      "quantize",
      "Quantize a repository model's newest version beside it (model.int8.onnx or "
      "model.fp16.onnx), which optimization.precision int8 or fp16 in its config then serves");
  named->add_option("NAME", options->model, "The model")->required();
  named->add_option("--model-repository", options->repository,
                    "Model repository (default: the embedded one)");
  AddSharedOptions(named, *options);
  named->callback([options, exit_code] {
    const auto root = ModelRepositoryOrDefault(options->repository);
    if (Status found = ForRepositoryModel(root, options->model, options->request); !found.ok()) {
      fmt::print(stderr, "braid: {}\n", found.message());
      *exit_code = 1;
      return;
    }
    *exit_code = Run(*options);
    if (*exit_code == 0) {
      fmt::print("serve it with `optimization: {{precision: {}}}` in the config in {}\n",
                 options->request.mode == Mode::kFp16 ? "fp16" : "int8",
                 options->request.input.parent_path().parent_path().string());
    }
  });
}

}  // namespace braid::cli
