#include "backends/onnxruntime/onnxruntime_backend.h"

#include <fmt/ranges.h>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "core/compute_budget.h"
#include "model/model.h"

namespace braid {
namespace {

constexpr char kDefaultFilename[] = "model.onnx";

std::atomic<bool> per_session_pools{false};

// ONNX Runtime's pool threads for regular sessions: they compute in the
// budget's regular tier.
OrtCustomThreadHandle CreateRegularThread(void* /*options*/, OrtThreadWorkerFn work, void* param) {
  auto* thread = new std::thread([work, param] {
    ProcessComputeBudget().EnterRegularTier();
    work(param);
  });
  return reinterpret_cast<OrtCustomThreadHandle>(thread);
}

void JoinRegularThread(OrtCustomThreadHandle handle) {
  auto* thread = reinterpret_cast<std::thread*>(const_cast<OrtCustomHandleType*>(handle));
  thread->join();
  delete thread;
}

// One Env for the process: ONNX Runtime wants exactly one, and it must
// outlive every session. It holds the global intra-op pool sized by the
// process's compute budget, in its regular tier; no thread of it spins
// while idle.
Ort::Env& Environment() {
  static Ort::Env env = [] {
    Ort::ThreadingOptions threading;
    threading.SetGlobalIntraOpNumThreads(ProcessComputeBudget().threads());
    threading.SetGlobalInterOpNumThreads(1);
    threading.SetGlobalSpinControl(0);
    threading.SetGlobalCustomCreateThreadFn(CreateRegularThread);
    threading.SetGlobalCustomJoinThreadFn(JoinRegularThread);
    return Ort::Env(threading, ORT_LOGGING_LEVEL_ERROR, "braid");
  }();
  return env;
}

// A session with a pool of its own of `intra` threads, none spinning.
void OwnPool(const InstanceGroup& group, int intra, Ort::SessionOptions& options) {
  options.SetIntraOpNumThreads(intra);
  options.SetInterOpNumThreads(group.inter_op_threads);
  options.SetExecutionMode(group.inter_op_threads > 1 ? ORT_PARALLEL : ORT_SEQUENTIAL);
  options.AddConfigEntry("session.intra_op.allow_spinning", "0");
  options.AddConfigEntry("session.inter_op.allow_spinning", "0");
}

// What an instance serves (instance_group): any level, urgent levels beside
// busy regular instances, or the off-peak levels alone.
enum class InstanceRole { kRegular, kPriority, kBackground };

// Sessions on the global pool, or with a pool of their own (see the header).
void ConfigureThreads(const InstanceGroup& group, InstanceRole role, Ort::SessionOptions& options) {
  if (role == InstanceRole::kBackground) {
    // The calling thread alone: the scheduler's background worker, which
    // computes at the idle priority.
    options.SetIntraOpNumThreads(1);
    options.SetInterOpNumThreads(1);
    options.SetExecutionMode(ORT_SEQUENTIAL);
    return;
  }
  if (per_session_pools) {
    options.SetIntraOpNumThreads(group.intra_op_threads);
    options.SetInterOpNumThreads(group.inter_op_threads);
    options.SetExecutionMode(group.inter_op_threads > 1 ? ORT_PARALLEL : ORT_SEQUENTIAL);
    return;
  }
  const int budget = ProcessComputeBudget().threads();
  const int intra = group.intra_op_threads == 0 ? budget : std::min(group.intra_op_threads, budget);
  if (role == InstanceRole::kPriority) {
    // Threads of its own, at the process's priority (they inherit the
    // loading thread's).
    OwnPool(group, intra, options);
    return;
  }
  if (intra == budget && group.inter_op_threads == 1) {
    options.DisablePerSessionThreads();
    options.SetExecutionMode(ORT_SEQUENTIAL);
    return;
  }
  // Below the budget, or with inter-op parallelism: a pool of its own.
  OwnPool(group, intra, options);
  options.SetCustomCreateThreadFn(CreateRegularThread);
  options.SetCustomJoinThreadFn(JoinRegularThread);
}

Result<ONNXTensorElementDataType> ToOnnx(DataType type) {
  switch (type) {
    case DataType::kBool:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
    case DataType::kUint8:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    case DataType::kInt32:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case DataType::kInt64:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    case DataType::kFp16:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    case DataType::kFp32:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case DataType::kBytes:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING;
  }
  return InvalidArgument("no ONNX type for {}", DataTypeName(type));
}

Result<DataType> FromOnnx(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      return DataType::kBool;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
      return DataType::kUint8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
      return DataType::kInt32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
      return DataType::kInt64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
      return DataType::kFp16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return DataType::kFp32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING:
      return DataType::kBytes;
    default:
      break;
  }
  return InvalidArgument("ONNX element type {} has no braid data type", static_cast<int>(type));
}

std::string OnnxShapeToString(const std::vector<std::int64_t>& dims) {
  std::vector<std::string> parts;
  for (auto d : dims) parts.push_back(d < 0 ? "?" : std::to_string(d));
  return fmt::format("[{}]", fmt::join(parts, ","));
}

// Checks one config tensor spec against the session's declaration of it.
Status CheckSpec(const ModelConfig& config, const std::string& file, std::string_view kind,
                 std::size_t index, const TensorSpec& spec, const Ort::TypeInfo& info) {
  auto tensor_info = info.GetTensorTypeAndShapeInfo();
  auto declared_type = FromOnnx(tensor_info.GetElementType());
  const std::string key = fmt::format("{}[{}] '{}'", kind, index, spec.name);
  if (!declared_type.ok() || *declared_type != spec.datatype) {
    return InvalidArgument(
        "{}: {} has datatype {} but {} declares {}", config.config_path().string(), key,
        DataTypeName(spec.datatype), file,
        declared_type.ok() ? DataTypeName(*declared_type) : "an unsupported type");
  }
  std::vector<std::int64_t> declared = tensor_info.GetShape();
  Shape expected = ExpectedShape(config, spec, -1);
  bool matches = declared.size() == expected.size();
  for (std::size_t d = 0; matches && d < declared.size(); ++d) {
    bool batch_dim = config.max_batch_size > 0 && d == 0;
    if (batch_dim) {
      matches = declared[d] < 0;  // batching needs a variable first dimension
    } else if (declared[d] >= 0 && expected[d] >= 0) {
      matches = declared[d] == expected[d];
    }
  }
  if (!matches) {
    return InvalidArgument(
        "{}: {} dims {} (with max_batch_size {}) disagree with {}, which declares {}{}",
        config.config_path().string(), key, ShapeToString(spec.dims), config.max_batch_size, file,
        OnnxShapeToString(declared),
        config.max_batch_size > 0 ? " (a batched model needs a variable first dimension)" : "");
  }
  return Status::Ok();
}

Status ConfigureProvider(const ModelConfig& config, Ort::SessionOptions& options) {
  using O = Optimization;
  const auto& opt = config.optimization;
  if (opt.execution_provider == O::Provider::kCpu) return Status::Ok();
  const char* wanted = opt.execution_provider == O::Provider::kCuda ? "CUDAExecutionProvider"
                                                                    : "TensorrtExecutionProvider";
  auto available = Ort::GetAvailableProviders();
  if (std::find(available.begin(), available.end(), wanted) == available.end()) {
    return MakeStatus(StatusCode::kUnimplemented,
                      "{}: optimization.execution_provider asks for {}, which this ONNX Runtime "
                      "build ({}) lacks; it has: {}",
                      config.config_path().string(), wanted, OnnxRuntimeVersion(),
                      fmt::join(available, ", "));
  }
  // A build can list a provider whose shared library is not installed (the
  // npm build lists CUDA without shipping it); appending it fails then.
  try {
    if (opt.execution_provider == O::Provider::kCuda) {
      OrtCUDAProviderOptions cuda{};
      options.AppendExecutionProvider_CUDA(cuda);
    } else {
      OrtTensorRTProviderOptions tensorrt{};
      tensorrt.trt_max_partition_iterations = 1000;
      tensorrt.trt_min_subgraph_size = 1;
      tensorrt.trt_max_workspace_size = std::size_t{1} << 30;
      tensorrt.trt_fp16_enable = opt.precision == O::Precision::kFp16;
      tensorrt.trt_int8_enable = opt.precision == O::Precision::kInt8;
      options.AppendExecutionProvider_TensorRT(tensorrt);
    }
  } catch (const Ort::Exception& e) {
    return MakeStatus(StatusCode::kUnimplemented,
                      "{}: optimization.execution_provider asks for {}, which this ONNX Runtime "
                      "build ({}) lacks the libraries for: {}",
                      config.config_path().string(), wanted, OnnxRuntimeVersion(), e.what());
  }
  return Status::Ok();
}

GraphOptimizationLevel ToOrtLevel(Optimization::GraphLevel level) {
  switch (level) {
    case Optimization::GraphLevel::kNone:
      return ORT_DISABLE_ALL;
    case Optimization::GraphLevel::kBasic:
      return ORT_ENABLE_BASIC;
    case Optimization::GraphLevel::kExtended:
      return ORT_ENABLE_EXTENDED;
    case Optimization::GraphLevel::kAll:
      return ORT_ENABLE_ALL;
  }
  return ORT_ENABLE_ALL;
}

// Checks the config's inputs and outputs against what the ONNX file declares:
// the same names, data types and dims (the batch dimension variable).
Status CheckDeclarations(const ModelConfig& config, Ort::Session& session,
                         const std::filesystem::path& version_dir,
                         const std::filesystem::path& file) {
  const std::string relative = (version_dir.filename() / file.filename()).string();
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<std::string> input_names, output_names;
  for (std::size_t k = 0; k < session.GetInputCount(); ++k) {
    input_names.push_back(session.GetInputNameAllocated(k, allocator).get());
  }
  for (std::size_t k = 0; k < session.GetOutputCount(); ++k) {
    output_names.push_back(session.GetOutputNameAllocated(k, allocator).get());
  }
  auto check = [&](std::string_view kind, const std::vector<TensorSpec>& specs,
                   const std::vector<std::string>& declared, auto type_of) -> Status {
    for (std::size_t s = 0; s < specs.size(); ++s) {
      auto it = std::find(declared.begin(), declared.end(), specs[s].name);
      if (it == declared.end()) {
        return InvalidArgument("{}: {}[{}] '{}' is not declared by {}, which has {} [{}]",
                               config.config_path().string(), kind, s, specs[s].name, relative,
                               kind, fmt::join(declared, ", "));
      }
      BRAID_RETURN_IF_ERROR(
          CheckSpec(config, relative, kind, s, specs[s], type_of(it - declared.begin())));
    }
    if (declared.size() != specs.size()) {
      return InvalidArgument("{}: {} lists {} {} but {} declares {}: [{}]",
                             config.config_path().string(), kind, specs.size(), kind, relative,
                             declared.size(), fmt::join(declared, ", "));
    }
    return Status::Ok();
  };
  BRAID_RETURN_IF_ERROR(check("inputs", config.inputs, input_names,
                              [&](std::size_t k) { return session.GetInputTypeInfo(k); }));
  return check("outputs", config.outputs, output_names,
               [&](std::size_t k) { return session.GetOutputTypeInfo(k); });
}

class OnnxRuntimeInstance : public ModelInstance {
 public:
  OnnxRuntimeInstance(Ort::Session session, std::vector<std::string> input_names,
                      std::vector<std::string> output_names)
      : session_(std::move(session)),
        memory_(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault)),
        input_names_(std::move(input_names)),
        output_names_(std::move(output_names)) {
    for (const auto& name : input_names_) input_name_ptrs_.push_back(name.c_str());
    for (const auto& name : output_names_) output_name_ptrs_.push_back(name.c_str());
  }

  // ModelInstance
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    try {
      std::vector<Ort::Value> values;
      values.reserve(inputs.size());
      for (const Tensor& tensor : inputs) {
        BRAID_ASSIGN_OR_RETURN(Ort::Value value, Bind(tensor));
        values.push_back(std::move(value));
      }
      run_options_.UnsetTerminate();
      auto results =
          session_.Run(run_options_, input_name_ptrs_.data(), values.data(), values.size(),
                       output_name_ptrs_.data(), output_name_ptrs_.size());
      outputs->clear();
      for (auto& result : results) {
        BRAID_ASSIGN_OR_RETURN(Tensor tensor, Unwrap(std::move(result)));
        outputs->push_back(std::move(tensor));
      }
    } catch (const Ort::Exception& e) {
      return Internal("onnxruntime: {}", e.what());
    }
    return Status::Ok();
  }

  // ONNX Runtime checks the flag between the graph's nodes.
  bool Preempt() override {
    run_options_.SetTerminate();
    return true;
  }

 private:
  // Hands `tensor`'s buffer to ONNX Runtime without a copy. ONNX Runtime only
  // reads inputs, so the const_cast never leads to a write.
  Result<Ort::Value> Bind(const Tensor& tensor) {
    BRAID_ASSIGN_OR_RETURN(auto type, ToOnnx(tensor.dtype()));
    if (tensor.dtype() == DataType::kBytes) {
      BRAID_ASSIGN_OR_RETURN(auto strings, tensor.Strings());
      Ort::AllocatorWithDefaultOptions allocator;
      auto value = Ort::Value::CreateTensor(allocator, tensor.shape().data(), tensor.shape().size(),
                                            ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING);
      for (std::size_t i = 0; i < strings.size(); ++i) {
        value.FillStringTensorElement(std::string(strings[i]).c_str(), i);
      }
      return value;
    }
    return Ort::Value::CreateTensor(memory_, const_cast<std::byte*>(tensor.data()),
                                    tensor.byte_size(), tensor.shape().data(),
                                    tensor.shape().size(), type);
  }

  // Wraps an ONNX Runtime output in a Tensor that keeps the value alive.
  static Result<Tensor> Unwrap(Ort::Value value) {
    auto info = value.GetTensorTypeAndShapeInfo();
    BRAID_ASSIGN_OR_RETURN(DataType type, FromOnnx(info.GetElementType()));
    Shape shape = info.GetShape();
    if (type == DataType::kBytes) {
      std::vector<std::string> strings;
      for (std::size_t i = 0; i < info.GetElementCount(); ++i) {
        strings.push_back(value.GetStringTensorElement(i));
      }
      return Tensor::FromStrings(strings, std::move(shape));
    }
    BRAID_ASSIGN_OR_RETURN(std::size_t size,
                           ByteSizeOf(type, static_cast<std::int64_t>(info.GetElementCount())));
    auto owner = std::make_shared<Ort::Value>(std::move(value));
    auto* data = owner->GetTensorMutableData<std::byte>();
    return Tensor::Wrap(type, std::move(shape), data, size, std::move(owner));
  }

  Ort::Session session_;
  Ort::RunOptions run_options_;  // one run at a time: the instance's scheduler worker
  Ort::MemoryInfo memory_;
  std::vector<std::string> input_names_;
  std::vector<std::string> output_names_;
  std::vector<const char*> input_name_ptrs_;
  std::vector<const char*> output_name_ptrs_;
};

// Runs one batch of zeros (batch size 1) so the first real request does not
// pay for lazy initialisation.
Status WarmUp(const ModelConfig& config, ModelInstance& instance) {
  std::vector<Tensor> inputs;
  for (const auto& spec : config.inputs) {
    Shape shape = ExpectedShape(config, spec, 1);
    for (auto& dim : shape) dim = std::max<std::int64_t>(dim, 1);
    if (spec.datatype == DataType::kBytes) {
      BRAID_ASSIGN_OR_RETURN(std::int64_t count, ElementCount(shape));
      BRAID_ASSIGN_OR_RETURN(Tensor tensor,
                             Tensor::FromStrings(std::vector<std::string>(count), shape));
      inputs.push_back(std::move(tensor));
    } else {
      BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(spec.datatype, shape));
      inputs.push_back(std::move(tensor));
    }
  }
  std::vector<Tensor> outputs;
  return instance.Execute(inputs, &outputs);
}

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config,
                                           const std::filesystem::path& version_dir) {
  // TensorRT lowers the FP32 file's precision itself.
  const bool tensorrt = config.optimization.execution_provider == Optimization::Provider::kTensorRt;
  const auto file =
      OnnxModelFile(config, version_dir,
                    tensorrt ? Optimization::Precision::kFp32 : config.optimization.precision);
  std::error_code error;
  if (!std::filesystem::is_regular_file(file, error)) {
    if (config.optimization.precision != Optimization::Precision::kFp32) {
      const bool int8 = config.optimization.precision == Optimization::Precision::kInt8;
      return NotFound(
          "{}: model file missing; optimization.precision {} serves the quantized copy that "
          "`braid models quantize {} --mode {}` writes",
          file.string(), int8 ? "int8" : "fp16", config.name, int8 ? "int8-dynamic" : "fp16");
    }
    return NotFound("{}: model file missing", file.string());
  }
  if (config.instance_group.kind == InstanceGroup::Kind::kGpu &&
      config.optimization.execution_provider == Optimization::Provider::kCpu) {
    return InvalidArgument(
        "{}: instance_group.kind gpu needs optimization.execution_provider cuda or tensorrt",
        config.config_path().string());
  }
  std::vector<ModelInstancePtr> instances;
  try {
    // Regular instances first, then the priority ones, then the background ones.
    const InstanceGroup& group = config.instance_group;
    const int background_begin = config.InstancesToLoad() - group.background_instances;
    const int priority_begin = background_begin - group.priority_instances;
    constexpr InstanceRole kRoles[] = {InstanceRole::kRegular, InstanceRole::kPriority,
                                       InstanceRole::kBackground};
    Ort::SessionOptions options[3];  // by role
    for (int role = 0; role < 3; ++role) {
      ConfigureThreads(group, kRoles[role], options[role]);
      options[role].SetGraphOptimizationLevel(ToOrtLevel(config.optimization.graph_optimization));
      BRAID_RETURN_IF_ERROR(ConfigureProvider(config, options[role]));
    }

    std::vector<std::string> input_names, output_names;
    for (const auto& spec : config.inputs) input_names.push_back(spec.name);
    for (const auto& spec : config.outputs) output_names.push_back(spec.name);
    for (int i = 0; i < config.InstancesToLoad(); ++i) {
      const int role = i < priority_begin ? 0 : i < background_begin ? 1 : 2;
      Ort::Session session(Environment(), file.c_str(), options[role]);
      if (i == 0) BRAID_RETURN_IF_ERROR(CheckDeclarations(config, session, version_dir, file));
      auto instance =
          std::make_unique<OnnxRuntimeInstance>(std::move(session), input_names, output_names);
      auto warm = WarmUp(config, *instance);
      if (!warm.ok()) return warm.WithContext(fmt::format("{}: warm-up failed", file.string()));
      instances.push_back(std::move(instance));
    }
  } catch (const Ort::Exception& e) {
    return InvalidArgument("{}: onnxruntime cannot load it: {}", file.string(), e.what());
  }
  return instances;
}

class MemoryModel : public OnnxModelRunner {
 public:
  MemoryModel(Ort::Session session, std::vector<OnnxTensorInfo> inputs,
              std::vector<OnnxTensorInfo> outputs)
      : inputs_(std::move(inputs)),
        outputs_(std::move(outputs)),
        instance_(std::move(session), Names(inputs_), Names(outputs_)) {}

  const std::vector<OnnxTensorInfo>& inputs() const override { return inputs_; }
  const std::vector<OnnxTensorInfo>& outputs() const override { return outputs_; }
  Result<std::vector<Tensor>> Run(std::span<const Tensor> inputs) override {
    if (inputs.size() != inputs_.size()) {
      return InvalidArgument("the model takes {} inputs, not {}", inputs_.size(), inputs.size());
    }
    std::vector<Tensor> outputs;
    BRAID_RETURN_IF_ERROR(instance_.Execute(inputs, &outputs));
    return outputs;
  }

 private:
  static std::vector<std::string> Names(const std::vector<OnnxTensorInfo>& infos) {
    std::vector<std::string> names;
    for (const auto& info : infos) names.push_back(info.name);
    return names;
  }

  std::vector<OnnxTensorInfo> inputs_;
  std::vector<OnnxTensorInfo> outputs_;
  OnnxRuntimeInstance instance_;
};

Result<OnnxTensorInfo> Describe(std::string name, const Ort::TypeInfo& type) {
  if (type.GetONNXType() != ONNX_TYPE_TENSOR) {
    return InvalidArgument("'{}' is not a tensor", name);
  }
  auto tensor = type.GetTensorTypeAndShapeInfo();
  BRAID_ASSIGN_OR_RETURN(DataType datatype, FromOnnx(tensor.GetElementType()));
  return OnnxTensorInfo{std::move(name), datatype, tensor.GetShape()};
}

}  // namespace

BackendFactory MakeOnnxRuntimeBackend() { return Load; }

std::filesystem::path OnnxModelFile(const ModelConfig& config,
                                    const std::filesystem::path& version_dir,
                                    Optimization::Precision precision) {
  const std::filesystem::path file =
      config.default_model_filename.empty() ? kDefaultFilename : config.default_model_filename;
  if (precision == Optimization::Precision::kFp32) return version_dir / file;
  const char* suffix = precision == Optimization::Precision::kInt8 ? ".int8" : ".fp16";
  return version_dir / (file.stem().string() + suffix + file.extension().string());
}

Result<std::unique_ptr<OnnxModelRunner>> OpenOnnxModel(std::string_view bytes) {
  try {
    Ort::SessionOptions options;
    options.DisablePerSessionThreads();
    options.SetExecutionMode(ORT_SEQUENTIAL);
    options.SetGraphOptimizationLevel(ORT_ENABLE_ALL);
    Ort::Session session(Environment(), bytes.data(), bytes.size(), options);
    Ort::AllocatorWithDefaultOptions allocator;
    std::vector<OnnxTensorInfo> inputs, outputs;
    for (std::size_t k = 0; k < session.GetInputCount(); ++k) {
      BRAID_ASSIGN_OR_RETURN(auto info, Describe(session.GetInputNameAllocated(k, allocator).get(),
                                                 session.GetInputTypeInfo(k)));
      inputs.push_back(std::move(info));
    }
    for (std::size_t k = 0; k < session.GetOutputCount(); ++k) {
      BRAID_ASSIGN_OR_RETURN(auto info, Describe(session.GetOutputNameAllocated(k, allocator).get(),
                                                 session.GetOutputTypeInfo(k)));
      outputs.push_back(std::move(info));
    }
    return std::unique_ptr<OnnxModelRunner>(
        std::make_unique<MemoryModel>(std::move(session), std::move(inputs), std::move(outputs)));
  } catch (const Ort::Exception& e) {
    return InvalidArgument("onnxruntime cannot load the model: {}", e.what());
  }
}

void UsePerSessionThreadPools() { per_session_pools = true; }

std::string OnnxRuntimeVersion() { return Ort::GetVersionString(); }

}  // namespace braid
