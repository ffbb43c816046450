#include "backends/remote/remote_backend.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "grpc_service.grpc.pb.h"
#include "model/model.h"

namespace braid {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

StatusCode FromGrpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return StatusCode::kOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return StatusCode::kInvalidArgument;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return StatusCode::kUnauthenticated;
    case grpc::StatusCode::NOT_FOUND:
      return StatusCode::kNotFound;
    case grpc::StatusCode::OUT_OF_RANGE:
      return StatusCode::kTooLarge;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return StatusCode::kResourceExhausted;
    case grpc::StatusCode::UNAVAILABLE:
      return StatusCode::kUnavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return StatusCode::kDeadlineExceeded;
    case grpc::StatusCode::CANCELLED:
      return StatusCode::kCancelled;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return StatusCode::kFailedPrecondition;
    case grpc::StatusCode::UNIMPLEMENTED:
      return StatusCode::kUnimplemented;
    default:
      return StatusCode::kInternal;
  }
}

// The addresses of one remote model, shared by its instances: a channel
// each, and a circuit breaker each.
class Endpoints {
 public:
  struct Address {
    std::string target;  // host:port
    std::unique_ptr<inference::GRPCInferenceService::Stub> stub;
    SteadyTime ejected_until{};  // guarded by mutex_
    bool failing = false;        // since its last success; guarded by mutex_
  };

  Endpoints(const std::vector<std::string>& targets, std::chrono::milliseconds eject)
      : eject_(eject) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(-1);
    arguments.SetMaxSendMessageSize(-1);
    for (const auto& target : targets) {
      auto channel =
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), arguments);
      addresses_.push_back({target, inference::GRPCInferenceService::NewStub(channel)});
    }
  }
  ~Endpoints() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    stop_.notify_all();
    if (checker_.joinable()) checker_.join();
  }

  // Asks every address whether `model` is ready each `interval`, on a
  // thread of its own: one that is not is ejected, an ejected one that is
  // comes back.
  void StartHealthChecks(std::string model, std::string version,
                         std::chrono::milliseconds interval) {
    checker_ = std::thread([this, model, version, interval] {
      std::unique_lock lock(mutex_);
      while (!stop_.wait_for(lock, interval, [this] { return stopping_; })) {
        lock.unlock();
        for (Address& address : addresses_) Check(address, model, version);
        lock.lock();
      }
    });
  }

  // The order to try the addresses in for one call: round robin over those
  // not ejected, then the ejected ones, least recently ejected first.
  std::vector<Address*> Order() {
    std::lock_guard lock(mutex_);
    const SteadyTime now = std::chrono::steady_clock::now();
    const std::size_t start = next_++ % addresses_.size();
    std::vector<Address*> open, ejected;
    for (std::size_t i = 0; i < addresses_.size(); ++i) {
      Address& address = addresses_[(start + i) % addresses_.size()];
      (address.ejected_until <= now ? open : ejected).push_back(&address);
    }
    std::sort(ejected.begin(), ejected.end(), [](const Address* a, const Address* b) {
      return a->ejected_until < b->ejected_until;
    });
    open.insert(open.end(), ejected.begin(), ejected.end());
    return open;
  }

  void Eject(Address& address, const grpc::Status& status) {
    std::lock_guard lock(mutex_);
    if (!std::exchange(address.failing, true))
      spdlog::warn("remote {} is unavailable ({}); skipped for {} ms at a time until it answers",
                   address.target, status.error_message(), eject_.count());
    address.ejected_until = std::chrono::steady_clock::now() + eject_;
  }

  void Restore(Address& address) {
    std::lock_guard lock(mutex_);
    if (std::exchange(address.failing, false)) spdlog::info("remote {} is back", address.target);
    address.ejected_until = {};
  }

 private:
  void Check(Address& address, const std::string& model, const std::string& version) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    inference::ModelReadyRequest request;
    request.set_name(model);
    request.set_version(version);
    inference::ModelReadyResponse response;
    const grpc::Status status = address.stub->ModelReady(&context, request, &response);
    if (status.ok() && response.ready()) return Restore(address);
    Eject(address,
          status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "model not ready") : status);
  }

  const std::chrono::milliseconds eject_;
  std::mutex mutex_;
  std::vector<Address> addresses_;  // fixed after construction
  std::size_t next_ = 0;            // guarded by mutex_
  bool stopping_ = false;           // guarded by mutex_
  std::condition_variable stop_;
  std::thread checker_;
};

struct RemoteModel {
  std::string name;
  std::string version;
  std::chrono::milliseconds timeout{30000};
  std::shared_ptr<Endpoints> endpoints;
};

bool Unreachable(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE;
}

// Whether `remote` (the server's shape, batch dimension included) fits
// `local` (the config's), -1 matching any size on either side.
bool ShapesFit(const google::protobuf::RepeatedField<std::int64_t>& remote, const Shape& local) {
  if (remote.size() != static_cast<int>(local.size())) return false;
  for (std::size_t i = 0; i < local.size(); ++i) {
    if (remote[static_cast<int>(i)] != -1 && local[i] != -1 &&
        remote[static_cast<int>(i)] != local[i])
      return false;
  }
  return true;
}

// Checks the config's inputs and outputs against the remote model's.
Status CheckMetadata(const ModelConfig& config, const inference::ModelMetadataResponse& metadata) {
  auto check = [&](const char* kind, const std::vector<TensorSpec>& specs,
                   const google::protobuf::RepeatedPtrField<
                       inference::ModelMetadataResponse::TensorMetadata>& remote) -> Status {
    for (const TensorSpec& spec : specs) {
      auto found = std::find_if(remote.begin(), remote.end(),
                                [&](const auto& tensor) { return tensor.name() == spec.name; });
      if (found == remote.end())
        return InvalidArgument("{} '{}' is not one of the remote model's", kind, spec.name);
      if (found->datatype() != DataTypeName(spec.datatype))
        return InvalidArgument("{} '{}' is {} here and {} at the remote", kind, spec.name,
                               DataTypeName(spec.datatype), found->datatype());
      const Shape local = ExpectedShape(config, spec, -1);
      if (!ShapesFit(found->shape(), local)) {
        std::ostringstream remote_shape;
        for (auto dim : found->shape()) remote_shape << dim << ' ';
        return InvalidArgument("{} '{}' has shape {} here and [ {}] at the remote", kind, spec.name,
                               ShapeToString(local), remote_shape.str());
      }
    }
    return Status::Ok();
  };
  BRAID_RETURN_IF_ERROR(check("input", config.inputs, metadata.inputs()));
  return check("output", config.outputs, metadata.outputs());
}

class RemoteInstance : public ModelInstance {
 public:
  RemoteInstance(const ModelConfig& config, RemoteModel remote)
      : inputs_(config.inputs), outputs_(config.outputs), remote_(std::move(remote)) {}

  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    return Execute(inputs, outputs, Duration::max());
  }

  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
                 Duration time_left) override {
    // The call's deadline: the batch's own when it is nearer than timeout_ms.
    const auto wait = time_left < remote_.timeout
                          ? std::chrono::duration_cast<std::chrono::milliseconds>(time_left)
                          : remote_.timeout;
    const auto deadline = std::chrono::system_clock::now() + wait;
    inference::ModelInferRequest request;
    request.set_model_name(remote_.name);
    request.set_model_version(remote_.version);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      auto* input = request.add_inputs();
      input->set_name(inputs_[i].name);
      input->set_datatype(std::string(DataTypeName(inputs[i].dtype())));
      for (auto dim : inputs[i].shape()) input->add_shape(dim);
      request.add_raw_input_contents(reinterpret_cast<const char*>(inputs[i].data()),
                                     inputs[i].byte_size());
    }
    grpc::Status last(grpc::StatusCode::UNAVAILABLE, "no address");
    std::string tried;
    for (Endpoints::Address* address : remote_.endpoints->Order()) {
      grpc::ClientContext context;
      context.set_deadline(deadline);
      inference::ModelInferResponse response;
      last = address->stub->ModelInfer(&context, request, &response);
      if (last.ok()) {
        remote_.endpoints->Restore(*address);
        return Outputs(response, outputs);
      }
      tried += (tried.empty() ? "" : ", ") + address->target;
      if (!Unreachable(last)) break;
      remote_.endpoints->Eject(*address, last);
    }
    return Status(
        FromGrpc(last.error_code()),
        fmt::format("remote model '{}' at {}: {}", remote_.name, tried, last.error_message()));
  }

 private:
  Status Outputs(const inference::ModelInferResponse& response, std::vector<Tensor>* outputs) {
    outputs->clear();
    for (const TensorSpec& spec : outputs_) {
      int index = -1;
      for (int j = 0; j < response.outputs_size(); ++j) {
        if (response.outputs(j).name() == spec.name) index = j;
      }
      if (index < 0 || index >= response.raw_output_contents_size())
        return Internal("remote model '{}' sent no output '{}'", remote_.name, spec.name);
      const auto& output = response.outputs(index);
      const std::string& bytes = response.raw_output_contents(index);
      Shape shape(output.shape().begin(), output.shape().end());
      Tensor tensor;
      if (spec.datatype == DataType::kBytes) {
        auto owner = std::make_shared<std::string>(bytes);
        tensor = Tensor::Wrap(spec.datatype, shape, reinterpret_cast<std::byte*>(owner->data()),
                              owner->size(), owner);
        BRAID_RETURN_IF_ERROR(tensor.Strings().status());
      } else {
        BRAID_ASSIGN_OR_RETURN(tensor, Tensor::Allocate(spec.datatype, shape));
        if (tensor.byte_size() != bytes.size())
          return Internal("remote model '{}': output '{}' holds {} bytes, its shape needs {}",
                          remote_.name, spec.name, bytes.size(), tensor.byte_size());
        std::memcpy(tensor.mutable_data(), bytes.data(), bytes.size());
      }
      outputs->push_back(std::move(tensor));
    }
    return Status::Ok();
  }

  const std::vector<TensorSpec> inputs_;
  const std::vector<TensorSpec> outputs_;
  RemoteModel remote_;
};

std::vector<std::string> SplitAddresses(const std::string& text) {
  std::vector<std::string> addresses;
  std::stringstream stream(text);
  for (std::string address; std::getline(stream, address, ',');) {
    address.erase(0, address.find_first_not_of(' '));
    address.erase(address.find_last_not_of(' ') + 1);
    if (!address.empty()) addresses.push_back(address);
  }
  return addresses;
}

// parameters[key] in milliseconds, at least `least`.
Result<std::chrono::milliseconds> Milliseconds(const ModelConfig& config, const char* key,
                                               const char* fallback, long long least = 1) {
  const std::string text = config.Parameter(key, fallback);
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || value < least)
    return InvalidArgument(
        "parameters.{} must be a number of milliseconds of at least {}, not '{}'", key, least,
        text);
  return std::chrono::milliseconds(value);
}

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config) {
  const std::string source = config.config_path().string();
  const auto addresses = SplitAddresses(config.Parameter("addresses", ""));
  if (addresses.empty())
    return InvalidArgument("{}: the remote backend needs parameters.addresses (host:port,...)",
                           source);
  RemoteModel remote;
  remote.name = config.Parameter("remote_model", config.name);
  remote.version = config.Parameter("remote_version", "");
  auto timeout = Milliseconds(config, "timeout_ms", "30000");
  if (!timeout.ok()) return timeout.status().WithContext(source);
  remote.timeout = *timeout;
  auto eject = Milliseconds(config, "eject_ms", "5000");
  if (!eject.ok()) return eject.status().WithContext(source);
  auto health = Milliseconds(config, "health_ms", "1000", /*least=*/0);
  if (!health.ok()) return health.status().WithContext(source);
  remote.endpoints = std::make_shared<Endpoints>(addresses, *eject);

  // The metadata, from the first address that answers.
  std::string failures;
  for (Endpoints::Address* address : remote.endpoints->Order()) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::min(remote.timeout, std::chrono::milliseconds(10000)));
    inference::ModelMetadataRequest request;
    request.set_name(remote.name);
    request.set_version(remote.version);
    inference::ModelMetadataResponse metadata;
    const grpc::Status status = address->stub->ModelMetadata(&context, request, &metadata);
    if (!status.ok()) {
      failures += fmt::format("{}{}: {}", failures.empty() ? "" : "; ", address->target,
                              status.error_message());
      continue;
    }
    BRAID_RETURN_IF_ERROR(CheckMetadata(config, metadata)
                              .WithContext(fmt::format("{}: remote model '{}' at {}", source,
                                                       remote.name, address->target)));
    if (health->count() > 0)
      remote.endpoints->StartHealthChecks(remote.name, remote.version, *health);
    std::vector<ModelInstancePtr> instances;
    for (int i = 0; i < config.InstancesToLoad(); ++i)
      instances.push_back(std::make_unique<RemoteInstance>(config, remote));
    return instances;
  }
  return Unavailable("{}: no address of remote model '{}' answered ({})", source, remote.name,
                     failures);
}

}  // namespace

BackendFactory MakeRemoteBackend() {
  return [](const ModelConfig& config, const std::filesystem::path&) { return Load(config); };
}

}  // namespace braid
