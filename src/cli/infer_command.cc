// `braid infer MODEL --input NAME=FILE ...`: one request, no server.
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <map>
#include <random>

#include "backends/backends.h"
#include "cli/commands.h"
#include "cli/tensor_json.h"
#include "core/file_util.h"
#include "core/npy.h"
#include "frontends/kserve/kserve.h"
#include "model/repository.h"

namespace braid::cli {
namespace {

constexpr std::size_t kMaxInputFileBytes = std::size_t{1} << 30;

struct InferOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::string repository;
  std::string output_dir;
  std::int64_t version = 0;
  std::int64_t batch = 1;
  std::uint32_t seed = 0;
};

// A tensor of the shape `spec` needs (variable dims become 1) with values
// drawn from a seeded generator.
Result<Tensor> RandomInput(const ModelConfig& config, const TensorSpec& spec, std::int64_t batch,
                           std::mt19937& random) {
  Shape shape = ExpectedShape(config, spec, batch);
  for (auto& dim : shape) dim = dim < 0 ? 1 : dim;
  if (spec.datatype == DataType::kBytes) {
    return InvalidArgument("input '{}' is BYTES; 'random' cannot invent it, give a .json file",
                           spec.name);
  }
  return RandomTensor(spec.datatype, std::move(shape), random);
}

Result<Tensor> ReadInput(const ModelConfig& config, const std::string& name,
                         const std::string& source, std::int64_t batch, std::mt19937& random) {
  const TensorSpec* spec = config.FindInput(name);
  if (spec == nullptr) {
    std::vector<std::string> known;
    for (const auto& input : config.inputs) known.push_back(input.name);
    return InvalidArgument("model '{}' has no input '{}' (its inputs: {})", config.name, name,
                           fmt::join(known, ", "));
  }
  if (source == "random") return RandomInput(config, *spec, batch, random);
  const std::filesystem::path path(source);
  if (path.extension() == ".npy") return ReadNpy(path);
  if (spec->datatype == DataType::kBytes && path.extension() != ".json") {
    // A media file (image, audio) is one BYTES element holding its bytes.
    BRAID_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, kMaxInputFileBytes));
    Shape shape = ExpectedShape(config, *spec, 1);
    for (auto& dim : shape) dim = dim < 0 ? 1 : dim;
    return Tensor::FromStrings({std::move(bytes)}, shape);
  }
  if (path.extension() == ".json") {
    BRAID_ASSIGN_OR_RETURN(std::string text, ReadFile(path, kMaxInputFileBytes));
    auto tensor = ParseTensorJson(text, spec->datatype);
    if (!tensor.ok()) return tensor.status().WithContext(path.string());
    return tensor;
  }
  return InvalidArgument("{}: input files must be .npy or .json (or the word 'random')", source);
}

Status RunInfer(const InferOptions& options) {
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  auto root = ModelRepositoryOrDefault(options.repository);
  ModelRepository repository(root, backends);
  spdlog::info("loading model {} from {}", options.model, root.string());
  BRAID_RETURN_IF_ERROR(repository.Load(options.model));
  BRAID_ASSIGN_OR_RETURN(ModelPtr model, repository.Get(options.model, options.version));

  std::mt19937 random(options.seed);
  std::map<std::string, Tensor> named;
  for (const auto& assignment : options.inputs) {
    auto equals = assignment.find('=');
    if (equals == std::string::npos || equals == 0) {
      return InvalidArgument("--input '{}' must look like NAME=FILE", assignment);
    }
    std::string name = assignment.substr(0, equals);
    if (named.count(name)) return InvalidArgument("--input '{}' is given twice", name);
    BRAID_ASSIGN_OR_RETURN(
        Tensor tensor,
        ReadInput(model->config(), name, assignment.substr(equals + 1), options.batch, random));
    named[name] = std::move(tensor);
  }
  BRAID_ASSIGN_OR_RETURN(std::vector<Tensor> inputs, model->OrderInputs(std::move(named)));
  std::vector<Tensor> outputs;
  BRAID_RETURN_IF_ERROR(model->Execute(0, inputs, &outputs));

  if (!options.output_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.output_dir, error);
    if (error)
      return InvalidArgument("{}: cannot create folder: {}", options.output_dir, error.message());
    for (std::size_t o = 0; o < outputs.size(); ++o) {
      auto path =
          std::filesystem::path(options.output_dir) / (model->config().outputs[o].name + ".npy");
      BRAID_RETURN_IF_ERROR(WriteNpy(path, outputs[o]));
      fmt::print("{} {} {} -> {}\n", model->config().outputs[o].name,
                 DataTypeName(outputs[o].dtype()), ShapeToString(outputs[o].shape()),
                 path.string());
    }
    return Status::Ok();
  }
  BRAID_ASSIGN_OR_RETURN(
      EncodedResponse encoded,
      EncodeInferResponse(KserveInferRequest{}, InferResponse{model, std::move(outputs)}));
  fmt::print("{}\n", encoded.body);
  return Status::Ok();
}

}  // namespace

void AddInferCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<InferOptions>();
  auto* infer = app.add_subcommand(
      "infer",
      "Run one inference request without a server and print the outputs as KServe v2 JSON.\n"
      "Example: braid infer clip-image --input pixel_values=random");
  infer->add_option("MODEL", options->model, "Model name in the repository")->required();
  infer
      ->add_option(
          "-i,--input", options->inputs,
          "NAME=FILE, where FILE is a .npy file, a .json file (nested arrays, or "
          "{\"shape\":[...],\"data\":[...]}), or 'random' for a correctly shaped random tensor")
      ->required();
  infer->add_option("-m,--model-repository", options->repository,
                    "Model repository (default: the embedded one)");
  infer->add_option("--model-version", options->version, "Model version (default: the newest)")
      ->check(CLI::NonNegativeNumber);
  infer->add_option("--batch", options->batch, "Batch size of 'random' inputs")
      ->check(CLI::Range(1, 1 << 16));
  infer->add_option("--seed", options->seed, "Seed for 'random' inputs");
  infer->add_option("-o,--output-dir", options->output_dir,
                    "Write each output as OUTPUT_NAME.npy in this folder instead of printing JSON");
  infer->callback([options, exit_code] {
    auto status = RunInfer(*options);
    if (!status.ok()) {
      fmt::print(stderr, "braid infer: {}\n", status.message());
      *exit_code = 1;
    }
  });
}

}  // namespace braid::cli
