#include "backends/torchscript/torchscript_backend.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <mutex>

#include "core/compute_budget.h"

namespace braid {
namespace {

namespace fs = std::filesystem;

Result<c10::ScalarType> TorchType(DataType type) {
  switch (type) {
    case DataType::kBool:
      return c10::ScalarType::Bool;
    case DataType::kUint8:
      return c10::ScalarType::Byte;
    case DataType::kInt32:
      return c10::ScalarType::Int;
    case DataType::kInt64:
      return c10::ScalarType::Long;
    case DataType::kFp16:
      return c10::ScalarType::Half;
    case DataType::kFp32:
      return c10::ScalarType::Float;
    case DataType::kBytes:
      break;
  }
  return InvalidArgument("a TorchScript module takes no {} tensors", DataTypeName(type));
}

class TorchScriptInstance : public ModelInstance {
 public:
  TorchScriptInstance(torch::jit::Module module, const ModelConfig& config, c10::Device device,
                      bool half)
      : module_(std::move(module)), outputs_(config.outputs), device_(device), half_(half) {}

  // ModelInstance
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    try {
      c10::InferenceMode inference;
      std::vector<c10::IValue> arguments;
      for (const Tensor& input : inputs) {
        BRAID_ASSIGN_OR_RETURN(c10::ScalarType type, TorchType(input.dtype()));
        const std::vector<std::int64_t> sizes(input.shape().begin(), input.shape().end());
        // A copy the module owns: it may write its inputs in place, and an
        // output may be a view of one, which must outlive the request's buffers.
        at::Tensor tensor = torch::from_blob(const_cast<std::byte*>(input.data()), sizes,
                                             torch::TensorOptions().dtype(type))
                                .clone();
        if (device_ != c10::Device(c10::kCPU)) tensor = tensor.to(device_);
        if (half_ && type == c10::ScalarType::Float) tensor = tensor.to(c10::ScalarType::Half);
        arguments.emplace_back(std::move(tensor));
      }
      BRAID_ASSIGN_OR_RETURN(std::vector<at::Tensor> results, Results(module_.forward(arguments)));
      outputs->clear();
      for (std::size_t o = 0; o < outputs_.size(); ++o) {
        at::Tensor result = results[o];
        if (half_ && result.scalar_type() == c10::ScalarType::Half &&
            outputs_[o].datatype == DataType::kFp32)
          result = result.to(c10::ScalarType::Float);
        result = result.to(c10::kCPU).contiguous();
        BRAID_ASSIGN_OR_RETURN(c10::ScalarType wanted, TorchType(outputs_[o].datatype));
        if (result.scalar_type() != wanted) {
          return InvalidArgument("output '{}' came back as {}, not {}", outputs_[o].name,
                                 c10::toString(result.scalar_type()),
                                 DataTypeName(outputs_[o].datatype));
        }
        auto owner = std::make_shared<at::Tensor>(std::move(result));
        const Shape shape(owner->sizes().begin(), owner->sizes().end());
        outputs->push_back(Tensor::Wrap(outputs_[o].datatype, shape,
                                        static_cast<std::byte*>(owner->data_ptr()), owner->nbytes(),
                                        owner));
      }
      return Status::Ok();
    } catch (const c10::Error& e) {
      return InvalidArgument("the TorchScript module failed: {}", e.what_without_backtrace());
    } catch (const std::exception& e) {  // the interpreter's own errors
      return InvalidArgument("the TorchScript module failed: {}", e.what());
    }
  }

 private:
  // forward()'s value as one tensor per config output, in config order.
  Result<std::vector<at::Tensor>> Results(const c10::IValue& value) const {
    std::vector<at::Tensor> tensors;
    if (value.isTensor()) {
      tensors.push_back(value.toTensor());
    } else if (value.isTuple()) {
      for (const auto& element : value.toTupleRef().elements()) {
        if (!element.isTensor())
          return InvalidArgument("forward() returned a non-tensor in a tuple");
        tensors.push_back(element.toTensor());
      }
    } else if (value.isTensorList()) {
      tensors = value.toTensorVector();
    } else if (value.isGenericDict()) {
      const auto dict = value.toGenericDict();
      for (const auto& spec : outputs_) {
        auto found = dict.find(spec.name);
        if (found == dict.end() || !found->value().isTensor())
          return InvalidArgument("forward() returned a dict without the tensor '{}'", spec.name);
        tensors.push_back(found->value().toTensor());
      }
    } else {
      return InvalidArgument("forward() returned {}, not a tensor, tuple, list or dict",
                             value.tagKind());
    }
    if (tensors.size() != outputs_.size()) {
      return InvalidArgument("forward() returned {} tensors; the config lists {} outputs",
                             tensors.size(), outputs_.size());
    }
    return tensors;
  }

  torch::jit::Module module_;
  std::vector<TensorSpec> outputs_;
  c10::Device device_;
  bool half_;
};

// A batch of one, zeros, variable dims 1: the warm-up.
Result<std::vector<Tensor>> WarmUpInputs(const ModelConfig& config) {
  std::vector<Tensor> inputs;
  for (const auto& spec : config.inputs) {
    Shape shape;
    if (config.max_batch_size > 0) shape.push_back(1);
    for (auto d : spec.dims) shape.push_back(d < 0 ? 1 : d);
    BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(spec.datatype, shape));
    inputs.push_back(std::move(tensor));
  }
  return inputs;
}

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config, const fs::path& version_dir) {
  const fs::path file =
      version_dir /
      (config.default_model_filename.empty() ? "model.pt" : config.default_model_filename);
  std::error_code error;
  if (!fs::exists(file, error)) return NotFound("{} does not exist", file.string());
  for (const auto* specs : {&config.inputs, &config.outputs}) {
    for (const auto& spec : *specs) BRAID_RETURN_IF_ERROR(TorchType(spec.datatype).status());
  }
  c10::Device device(c10::kCPU);
  switch (config.optimization.execution_provider) {
    case Optimization::Provider::kCpu:
      break;
    case Optimization::Provider::kCuda:
      if (!torch::cuda::is_available()) {
        return Unavailable(
            "{}: execution_provider cuda, but libtorch sees no CUDA device (Debian's libtorch "
            "is built for the CPU; build against a CUDA one with -DTORCH_ROOT=)",
            config.config_path().string());
      }
      device = c10::Device(c10::kCUDA);
      break;
    case Optimization::Provider::kTensorRt:
      return InvalidArgument("{}: the torchscript backend has no TensorRT execution provider",
                             config.config_path().string());
  }
  const bool half = config.optimization.precision == Optimization::Precision::kFp16;
  if (half && device.is_cpu()) {
    return InvalidArgument(
        "{}: precision fp16 needs execution_provider cuda (libtorch's CPU kernels have no half "
        "matrix products)",
        config.config_path().string());
  }
  if (config.optimization.precision == Optimization::Precision::kInt8) {
    return InvalidArgument("{}: the torchscript backend serves fp32 or fp16, not int8",
                           config.config_path().string());
  }
  static std::once_flag threads;
  std::call_once(threads, [] { at::set_num_threads(ProcessComputeBudget().threads()); });
  BRAID_ASSIGN_OR_RETURN(auto warm_up, WarmUpInputs(config));
  std::vector<ModelInstancePtr> instances;
  for (int i = 0; i < config.InstancesToLoad(); ++i) {
    torch::jit::Module module;
    try {
      module = torch::jit::load(file.string(), device);
      module.eval();
      if (half) module.to(c10::ScalarType::Half);
    } catch (const c10::Error& e) {
      return InvalidArgument("{}: libtorch cannot load it: {}", file.string(),
                             e.what_without_backtrace());
    } catch (const std::exception& e) {
      return InvalidArgument("{}: libtorch cannot load it: {}", file.string(), e.what());
    }
    auto instance = std::make_unique<TorchScriptInstance>(std::move(module), config, device, half);
    std::vector<Tensor> outputs;
    if (Status status = instance->Execute(warm_up, &outputs); !status.ok())
      return status.WithContext(fmt::format("{}: the warm-up batch", file.string()));
    instances.push_back(std::move(instance));
  }
  return instances;
}

}  // namespace

BackendFactory MakeTorchScriptBackend() { return Load; }

}  // namespace braid
