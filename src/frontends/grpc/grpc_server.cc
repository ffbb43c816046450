#include "frontends/grpc/grpc_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include "core/credentials.h"
#include "frontends/grpc/credentials.h"
#include "frontends/listener.h"
#include "frontends/status_mapping.h"
#include "grpc_service.grpc.pb.h"
#include "preprocess/audio_stream.h"
#include "serving/live_speech.h"

namespace braid {
namespace {

using inference::GRPCInferenceService;

// The address in gRPC's peer string ("ipv4:1.2.3.4:567", "ipv6:[::1]:567"),
// as the HTTP server writes it.
std::string PeerAddress(std::string_view peer) {
  if (const auto colon = peer.find(':'); colon != std::string_view::npos)
    peer.remove_prefix(colon + 1);
  if (peer.starts_with('[')) return std::string(peer.substr(1, peer.find(']') - 1));
  return std::string(peer.substr(0, peer.rfind(':')));
}

grpc::Status ToGrpc(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(GrpcStatusFor(status.code())),
                      status.message());
}

template <typename T, typename Repeated>
Result<Tensor> FromRepeated(DataType type, const Shape& shape, std::int64_t count,
                            const Repeated& values, const std::string& name) {
  if (static_cast<std::int64_t>(values.size()) != count) {
    return InvalidArgument("input '{}' has {} values but shape {} needs {}", name, values.size(),
                           ShapeToString(shape), count);
  }
  BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(type, shape));
  auto out = tensor.mutable_span<T>();
  for (int i = 0; i < values.size(); ++i) out[i] = static_cast<T>(values[i]);
  return tensor;
}

Status OptionsFromProto(const inference::ModelInferRequest& request, InferOptions* options) {
  for (const auto& [key, parameter] : request.parameters()) {
    ParameterValue value;
    if (parameter.has_bool_param()) {
      value = parameter.bool_param();
    } else if (parameter.has_int64_param()) {
      value = parameter.int64_param();
    } else if (parameter.has_uint64_param()) {
      value = parameter.uint64_param();
    }
    BRAID_RETURN_IF_ERROR(ApplyInferParameter(key, value, options));
  }
  return Status::Ok();
}

void AddOutput(const std::string& name, const Tensor& tensor, inference::ModelInferResponse* out) {
  auto* output = out->add_outputs();
  output->set_name(name);
  output->set_datatype(std::string(DataTypeName(tensor.dtype())));
  for (auto dim : tensor.shape()) output->add_shape(dim);
  out->add_raw_output_contents(reinterpret_cast<const char*>(tensor.data()), tensor.byte_size());
}

void FillResponse(const inference::ModelInferRequest& request, const InferResponse& response,
                  inference::ModelInferResponse* out) {
  const ModelConfig& config = response.model->config();
  out->set_model_name(config.name);
  out->set_model_version(std::to_string(response.model->version()));
  out->set_id(request.id());
  for (std::size_t o = 0; o < config.outputs.size(); ++o) {
    if (request.outputs_size() > 0) {
      bool wanted = false;
      for (const auto& requested : request.outputs())
        wanted |= requested.name() == config.outputs[o].name;
      if (!wanted) continue;
    }
    AddOutput(config.outputs[o].name, response.outputs[o], out);
  }
}

// A request that is a piece of a live sequence (see grpc_server.h).
bool InSequence(const inference::ModelInferRequest& request) {
  return request.parameters().contains("sequence_id");
}

struct SequenceControl {
  std::string name;              // the id as messages and the call's table write it
  inference::InferParameter id;  // echoed on the responses
  bool start = false;
  bool end = false;
};

Result<bool> BoolParameter(const inference::ModelInferRequest& request, const std::string& key) {
  auto it = request.parameters().find(key);
  if (it == request.parameters().end()) return false;
  if (!it->second.has_bool_param())
    return InvalidArgument("parameter '{}' must be true or false", key);
  return it->second.bool_param();
}

Result<int> IntParameter(const inference::ModelInferRequest& request, const std::string& key,
                         int fallback) {
  auto it = request.parameters().find(key);
  if (it == request.parameters().end()) return fallback;
  const inference::InferParameter& parameter = it->second;
  if (parameter.has_int64_param() && parameter.int64_param() >= 0 &&
      parameter.int64_param() <= std::numeric_limits<int>::max()) {
    return static_cast<int>(parameter.int64_param());
  }
  if (parameter.has_uint64_param() &&
      parameter.uint64_param() <= static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
    return static_cast<int>(parameter.uint64_param());
  }
  return InvalidArgument("parameter '{}' must be a non-negative integer", key);
}

Result<SequenceControl> SequenceFromProto(const inference::ModelInferRequest& request) {
  SequenceControl control;
  control.id = request.parameters().at("sequence_id");
  if (control.id.has_int64_param() && control.id.int64_param() != 0) {
    control.name = std::to_string(control.id.int64_param());
  } else if (control.id.has_uint64_param() && control.id.uint64_param() != 0) {
    control.name = std::to_string(control.id.uint64_param());
  } else if (control.id.has_string_param() && !control.id.string_param().empty()) {
    control.name = fmt::format("'{}'", control.id.string_param());
  } else {
    return InvalidArgument(
        "parameter 'sequence_id' must be a non-zero integer or a non-empty string");
  }
  BRAID_ASSIGN_OR_RETURN(control.start, BoolParameter(request, "sequence_start"));
  BRAID_ASSIGN_OR_RETURN(control.end, BoolParameter(request, "sequence_end"));
  return control;
}

// The audio bytes of a sequence's request: its one input, BYTES (the
// elements joined) or UINT8.
Result<std::string> SequenceAudio(const inference::ModelInferRequest& request) {
  if (request.inputs_size() != 1) {
    return InvalidArgument(
        "a request of a sequence has one input, its audio bytes; this one has {}",
        request.inputs_size());
  }
  BRAID_ASSIGN_OR_RETURN(auto inputs, InputsFromProto(request, nullptr));
  const auto& [name, tensor] = *inputs.begin();
  if (tensor.dtype() == DataType::kUint8)
    return std::string(reinterpret_cast<const char*>(tensor.data()), tensor.byte_size());
  if (tensor.dtype() != DataType::kBytes) {
    return InvalidArgument("input '{}' holds audio bytes: BYTES or UINT8, not {}", name,
                           DataTypeName(tensor.dtype()));
  }
  BRAID_ASSIGN_OR_RETURN(auto parts, tensor.Strings());
  std::string audio;
  for (std::string_view part : parts) audio.append(part);
  return audio;
}

inference::InferParameter StringParam(std::string_view value) {
  inference::InferParameter parameter;
  parameter.set_string_param(std::string(value));
  return parameter;
}
inference::InferParameter DoubleParam(double value) {
  inference::InferParameter parameter;
  parameter.set_double_param(value);
  return parameter;
}
inference::InferParameter BoolParam(bool value) {
  inference::InferParameter parameter;
  parameter.set_bool_param(value);
  return parameter;
}

inference::DataType ProtoType(DataType type) {
  switch (type) {
    case DataType::kBool:
      return inference::TYPE_BOOL;
    case DataType::kUint8:
      return inference::TYPE_UINT8;
    case DataType::kInt32:
      return inference::TYPE_INT32;
    case DataType::kInt64:
      return inference::TYPE_INT64;
    case DataType::kFp16:
      return inference::TYPE_FP16;
    case DataType::kFp32:
      return inference::TYPE_FP32;
    case DataType::kBytes:
      return inference::TYPE_STRING;
  }
  return inference::TYPE_INVALID;
}

}  // namespace

Result<std::map<std::string, Tensor>> InputsFromProto(const inference::ModelInferRequest& request,
                                                      std::shared_ptr<const void> owner) {
  std::map<std::string, Tensor> inputs;
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return InvalidArgument("{} raw_input_contents for {} inputs", request.raw_input_contents_size(),
                           request.inputs_size());
  }
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& input = request.inputs(i);
    auto type = ParseDataType(input.datatype());
    if (!type)
      return InvalidArgument("input '{}' has unknown datatype '{}'", input.name(),
                             input.datatype());
    Shape shape(input.shape().begin(), input.shape().end());
    BRAID_ASSIGN_OR_RETURN(std::int64_t count, ElementCount(shape));
    if (inputs.count(input.name()))
      return InvalidArgument("input '{}' is given twice", input.name());
    if (raw) {
      const std::string& bytes = request.raw_input_contents(i);
      auto* data = reinterpret_cast<std::byte*>(const_cast<char*>(bytes.data()));
      Tensor tensor = Tensor::Wrap(*type, shape, data, bytes.size(), owner);
      if (*type == DataType::kBytes) {
        BRAID_RETURN_IF_ERROR(
            tensor.Strings().status().WithContext(fmt::format("input '{}'", input.name())));
      } else {
        BRAID_ASSIGN_OR_RETURN(std::size_t expected, ByteSizeOf(*type, count));
        if (expected != bytes.size()) {
          return InvalidArgument(
              "input '{}': raw_input_contents holds {} bytes but shape {} of {} needs {}",
              input.name(), bytes.size(), ShapeToString(shape), DataTypeName(*type), expected);
        }
      }
      inputs[input.name()] = std::move(tensor);
      continue;
    }
    const auto& contents = input.contents();
    Result<Tensor> tensor = InvalidArgument("input '{}' has no contents", input.name());
    switch (*type) {
      case DataType::kFp32:
        tensor = FromRepeated<float>(*type, shape, count, contents.fp32_contents(), input.name());
        break;
      case DataType::kInt64:
        tensor = FromRepeated<std::int64_t>(*type, shape, count, contents.int64_contents(),
                                            input.name());
        break;
      case DataType::kInt32:
        tensor =
            FromRepeated<std::int32_t>(*type, shape, count, contents.int_contents(), input.name());
        break;
      case DataType::kUint8:
        tensor =
            FromRepeated<std::uint8_t>(*type, shape, count, contents.uint_contents(), input.name());
        break;
      case DataType::kBool:
        tensor = FromRepeated<bool>(*type, shape, count, contents.bool_contents(), input.name());
        break;
      case DataType::kBytes: {
        std::vector<std::string> strings(contents.bytes_contents().begin(),
                                         contents.bytes_contents().end());
        tensor = Tensor::FromStrings(strings, shape);
        break;
      }
      case DataType::kFp16:
        tensor = InvalidArgument("FP16 input '{}' must use raw_input_contents", input.name());
        break;
    }
    if (!tensor.ok()) return tensor.status();
    inputs[input.name()] = std::move(tensor).value();
  }
  return inputs;
}

namespace net = boost::asio;

// The gRPC port's connections: accepted here, so that their caps and the
// back-off when descriptors run out are the HTTP server's (Listener), then
// handed to gRPC, and counted until gRPC closes them. gRPC 1.51 says
// nothing when it closes a connection: a sweep once a second finds the
// descriptors that no longer hold the socket handed over (by its inode).
class GrpcConnections {
 public:
  GrpcConnections(std::size_t max_connections, std::size_t max_per_address)
      : limits_(max_connections, max_per_address),
        listener_(io_, limits_, "", [this](Listener::Socket socket, std::string address) {
          Hand(std::move(socket), std::move(address));
        }) {}
  ~GrpcConnections() { Stop(); }

  Result<std::uint16_t> Listen(const std::string& host, std::uint16_t port) {
    return listener_.Listen(host, port);
  }
  // Hands what it accepts to `acceptor`, from now on.
  void Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor) {
    acceptor_ = std::move(acceptor);
    work_.emplace(io_.get_executor());
    listener_.Start();
    Sweep();
    thread_ = std::thread([this] { io_.run(); });
  }
  // Stops accepting; the connections handed over are gRPC's to close.
  void Stop() {
    if (!thread_.joinable()) return;
    listener_.Close();
    // A sweep whose wait has already ended is not cancelled: the flag
    // keeps it from arming the next.
    net::post(io_, [this] {
      stopping_ = true;
      sweeper_.cancel();
    });
    work_.reset();
    thread_.join();
  }

 private:
  struct Handed {
    int fd;
    ino_t inode;
    std::string address;
  };

  void Hand(Listener::Socket socket, std::string address) {
    const int fd = socket.release();
    struct stat status {};
    // gRPC reads and writes its sockets without blocking, and its external
    // path (unlike its own accept) does not set that up.
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || ::fstat(fd, &status) != 0) {
      ::close(fd);
      limits_.Release(address);
      return;
    }
    {
      std::lock_guard lock(mutex_);
      handed_.push_back({fd, status.st_ino, std::move(address)});
    }
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters connection;
    connection.listener_fd = listener_.native_handle();
    connection.fd = fd;
    acceptor_->HandleNewConnection(&connection);
  }

  void Sweep() {
    sweeper_.expires_after(std::chrono::seconds(1));
    sweeper_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopping_) return;
      std::lock_guard lock(mutex_);
      std::erase_if(handed_, [this](const Handed& handed) {
        struct stat status {};
        if (::fstat(handed.fd, &status) == 0 && status.st_ino == handed.inode) return false;
        limits_.Release(handed.address);
        return true;
      });
      Sweep();
    });
  }

  ConnectionLimits limits_;
  net::io_context io_{1};
  Listener listener_;
  net::steady_timer sweeper_{io_};
  bool stopping_ = false;  // touched only on the io thread
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  std::mutex mutex_;
  std::vector<Handed> handed_;  // guarded by mutex_
  std::thread thread_;
};

class StreamReactor;

// With --grpc-response-compression, ModelInfer answers from this size on are
// compressed for a client that accepts it (HTTP gzips its large JSON and text
// answers from the same size).
constexpr std::size_t kCompressMinBytes = 1024;

class GrpcServer::Impl final : public GRPCInferenceService::CallbackService {
 public:
  Impl(InferenceService& service, Metrics& metrics, Clock& clock, LiveSpeech* live,
       GrpcServerOptions options)
      : service_(service),
        metrics_(metrics),
        clock_(clock),
        live_(live),
        options_(std::move(options)),
        connections_(options_.max_connections, options_.max_connections_per_address) {}

  std::unique_ptr<grpc::Server> server_;
  // Ends live sequences that get no audio for options_.live_idle_timeout,
  // checking once a second (only when there is a LiveSpeech).
  std::thread sweeper_;
  std::mutex sweeper_mutex_;
  std::condition_variable sweeper_wake_;
  bool sweeper_stop_ = false;  // guarded by sweeper_mutex_
  void Sweep();
  // Open ModelStreamInfer streams, so that a drain can end them. A stream
  // leaves under this lock before it is deleted (lock order: streams_mutex_,
  // then a stream's own).
  std::mutex streams_mutex_;
  std::unordered_set<StreamReactor*> streams_;  // guarded by streams_mutex_
  bool draining_ = false;                       // guarded by streams_mutex_

  // GRPCInferenceService::CallbackService
  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* response) override {
    if (options_.protect_health) {
      if (auto denied = Authorize(context, false); !denied.ok()) return Done(context, denied);
    }
    response->set_live(true);
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* response) override {
    if (options_.protect_health) {
      if (auto denied = Authorize(context, false); !denied.ok()) return Done(context, denied);
    }
    response->set_ready(service_.Ready());
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override {
    if (auto denied = Admit(context, false); !denied.ok()) return Done(context, denied);
    auto version = ParseModelVersion(request->version());
    if (!version.ok()) return Done(context, ToGrpc(version.status()));
    auto model = service_.GetModel(request->name(), *version);
    const bool ready = model.ok() || service_.ServesWorkflow(request->name(), *version);
    if (!ready && model.status().code() == StatusCode::kNotFound)
      return Done(context, ToGrpc(model.status()));
    response->set_ready(ready);
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* response) override {
    if (auto denied = Admit(context, false); !denied.ok()) return Done(context, denied);
    response->set_name("braid");
    response->set_version("0.1.0");
    for (const char* extension : {"binary_tensor_data", "parameters", "statistics",
                                  "model_repository", "schedule_policy"}) {
      response->add_extensions(extension);
    }
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override {
    if (auto denied = Admit(context, false); !denied.ok()) return Done(context, denied);
    auto model = ResolveModel(request->name(), request->version());
    if (!model.ok()) return Done(context, ToGrpc(model.status()));
    const braid::ModelConfig& config = (*model)->config();
    response->set_name(config.name);
    response->set_platform(ModelPlatform(config));
    for (const auto& status : service_.Index()) {
      if (status.name == config.name && status.state == ModelState::kReady)
        response->add_versions(std::to_string(status.version));
    }
    auto fill = [&](const std::vector<TensorSpec>& specs, auto* list) {
      for (const auto& spec : specs) {
        auto* tensor = list->Add();
        tensor->set_name(spec.name);
        tensor->set_datatype(std::string(DataTypeName(spec.datatype)));
        for (auto dim : ExpectedShape(config, spec, -1)) tensor->add_shape(dim);
      }
    };
    fill(config.inputs, response->mutable_inputs());
    fill(config.outputs, response->mutable_outputs());
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override {
    if (auto denied = Admit(context, false); !denied.ok()) return Done(context, denied);
    auto model = ResolveModel(request->name(), request->version());
    if (!model.ok()) return Done(context, ToGrpc(model.status()));
    const braid::ModelConfig& config = (*model)->config();
    auto* out = response->mutable_config();
    out->set_name(config.name);
    out->set_platform(ModelPlatform(config));
    out->set_backend(config.backend);
    out->set_max_batch_size(config.max_batch_size);
    for (const auto& spec : config.inputs) {
      auto* input = out->add_input();
      input->set_name(spec.name);
      input->set_data_type(ProtoType(spec.datatype));
      for (auto dim : spec.dims) input->add_dims(dim);
    }
    for (const auto& spec : config.outputs) {
      auto* output = out->add_output();
      output->set_name(spec.name);
      output->set_data_type(ProtoType(spec.datatype));
      for (auto dim : spec.dims) output->add_dims(dim);
    }
    auto* group = out->add_instance_group();
    group->set_count(config.instance_group.count);
    group->set_kind(config.instance_group.kind == InstanceGroup::Kind::kGpu
                        ? inference::ModelInstanceGroup::KIND_GPU
                        : inference::ModelInstanceGroup::KIND_CPU);
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override {
    if (auto denied = Admit(context, false); !denied.ok()) return Done(context, denied);
    for (const auto& [name, versions] : service_.Stats()) {
      if (!request->name().empty() && request->name() != name) continue;
      for (const auto& [version, s] : versions) {
        auto* stats = response->add_model_stats();
        stats->set_name(name);
        stats->set_version(std::to_string(version));
        stats->set_inference_count(s.inferences);
        stats->set_execution_count(s.executions);
        auto* infer = stats->mutable_inference_stats();
        infer->mutable_success()->set_count(s.success);
        infer->mutable_fail()->set_count(s.failure);
        infer->mutable_queue()->set_count(s.queue_time.count);
        infer->mutable_queue()->set_ns(static_cast<std::uint64_t>(s.queue_time.sum_us * 1000));
        infer->mutable_compute_infer()->set_count(s.compute_time.count);
        infer->mutable_compute_infer()->set_ns(
            static_cast<std::uint64_t>(s.compute_time.sum_us * 1000));
        for (std::size_t b = 1; b < s.batch_sizes.size(); ++b) {
          if (s.batch_sizes[b] == 0) continue;
          auto* batch = stats->add_batch_stats();
          batch->set_batch_size(b);
          batch->mutable_compute_infer()->set_count(s.batch_sizes[b]);
        }
      }
    }
    if (!request->name().empty() && response->model_stats_size() == 0) {
      auto model = service_.GetModel(request->name());
      if (!model.ok()) return Done(context, ToGrpc(model.status()));
    }
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override {
    if (auto denied = Admit(context, false); !denied.ok()) return Done(context, denied);
    for (const auto& status : service_.Index()) {
      if (request->ready() && status.state != ModelState::kReady) continue;
      auto* entry = response->add_models();
      entry->set_name(status.name);
      if (status.version > 0) entry->set_version(std::to_string(status.version));
      entry->set_state(std::string(ModelStateName(status.state)));
      entry->set_reason(status.reason);
    }
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse*) override {
    if (auto denied = Admit(context, true); !denied.ok()) return Done(context, denied);
    return Done(context, ToGrpc(service_.Load(request->model_name())));
  }
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse*) override {
    if (auto denied = Admit(context, true); !denied.ok()) return Done(context, denied);
    return Done(context, ToGrpc(service_.Unload(request->model_name())));
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    if (auto denied = Admit(context, false); !denied.ok()) return Done(context, denied);
    if (InSequence(*request)) {
      return Done(context, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        "a request with sequence_id is a piece of a live stream: "
                                        "send the sequence on ModelStreamInfer"));
    }
    auto* reactor = new InferReactor;
    const TimePoint received = clock_.Now();
    // The request message lives until Finish, which comes after inference.
    std::shared_ptr<const void> no_owner;
    RunInfer(*request, no_owner, context, reactor->cancellation,
             [this, context, reactor, request, response, received](Result<InferResponse> result) {
               grpc::Status status = grpc::Status::OK;
               if (result.ok()) {
                 FillResponse(*request, *result, response);
                 // Compressed when the server is told to, for answers worth
                 // it: gRPC picks an algorithm the client accepts (gzip for
                 // the common clients), none for a client that accepts none.
                 if (options_.response_compression > 0 &&
                     response->ByteSizeLong() >= kCompressMinBytes) {
                   context->set_compression_level(
                       static_cast<grpc_compression_level>(options_.response_compression));
                 }
               } else {
                 status = ToGrpc(result.status());
               }
               metrics_.ObserveRequest("grpc",
                                       result.ok() ? request->model_name()
                                                   : service_.MetricsLabel(request->model_name()),
                                       HttpStatusFor(result.status().code()),
                                       clock_.Now() - received);
               reactor->Finish(status);
             });
    return reactor;
  }

  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;

  // Validates and schedules one request; `done` gets the result.
  // `cancellation` cancels its queued work (the call was cancelled).
  void RunInfer(const inference::ModelInferRequest& request, std::shared_ptr<const void> owner,
                grpc::CallbackServerContext* context,
                std::shared_ptr<CancellationToken> cancellation, InferCallback done) {
    auto version = ParseModelVersion(request.model_version());
    if (!version.ok()) return done(version.status());
    auto inputs = InputsFromProto(request, std::move(owner));
    if (!inputs.ok()) return done(inputs.status());
    InferOptions options;
    if (auto status = OptionsFromProto(request, &options); !status.ok()) return done(status);
    // A gRPC callback thread may run a short batch and fill the response.
    options.caller_may_compute = true;
    options.cancellation = std::move(cancellation);
    const auto deadline = context->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      options.deadline = clock_.Now() + std::chrono::duration_cast<Duration>(
                                            deadline - std::chrono::system_clock::now());
    }
    service_.Infer(request.model_name(), *version, std::move(inputs).value(), options,
                   std::move(done));
  }

  // The model a request names (name and version string), or the gRPC error.
  Result<ModelPtr> ResolveModel(const std::string& name, const std::string& version) const {
    BRAID_ASSIGN_OR_RETURN(std::int64_t number, ParseModelVersion(version));
    return service_.GetModel(name, number);
  }

  // A call within its address's rate (--rate-limit) and with its key.
  grpc::Status Admit(grpc::CallbackServerContext* context, bool admin) const {
    if (options_.limiter && options_.limiter->Take(PeerAddress(context->peer()))) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "too many requests from this address; retry later");
    }
    return Authorize(context, admin);
  }

  grpc::Status Authorize(grpc::CallbackServerContext* context, bool admin) const {
    const std::string& key =
        admin && !options_.admin_key.empty() ? options_.admin_key : options_.api_key;
    if (key.empty()) return grpc::Status::OK;
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    if (it != metadata.end() &&
        KeyMatches(BearerCredential(std::string_view(it->second.data(), it->second.size())), key)) {
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "send metadata 'authorization: Bearer KEY'");
  }

  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                                        const grpc::Status& status) {
    auto* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  // One ModelInfer call under way. A call cancelled before its answer (the
  // client cancels or leaves, or its deadline passes) cancels the request's
  // queued work, as an HTTP client that hangs up does. Deletes itself in
  // OnDone.
  class InferReactor final : public grpc::ServerUnaryReactor {
   public:
    const std::shared_ptr<CancellationToken> cancellation = std::make_shared<CancellationToken>();

    void OnCancel() override { cancellation->Cancel(); }
    void OnDone() override { delete this; }
  };

  InferenceService& service_;
  Metrics& metrics_;
  Clock& clock_;
  LiveSpeech* const live_;
  const GrpcServerOptions options_;
  GrpcConnections connections_;
};

// One ModelStreamInfer call: reads requests one after another, runs them
// concurrently, and writes each response as it completes (one write in
// flight at a time, as gRPC requires); the pieces of a live sequence run in
// order, one at a time. Deletes itself in OnDone.
class StreamReactor : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                     inference::ModelStreamInferResponse> {
 public:
  StreamReactor(GrpcServer::Impl& server, grpc::CallbackServerContext* context)
      : server_(server), context_(context) {
    if (auto denied = server_.Admit(context, false); !denied.ok()) {
      finished_ = true;
      Finish(denied);
      return;
    }
    {
      std::lock_guard lock(server_.streams_mutex_);
      if (!server_.draining_) server_.streams_.insert(this);
      draining_ = server_.draining_;
    }
    if (draining_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
      return;
    }
    StartRead(&incoming_);
  }

  // The server is draining: the requests read so far are answered and the
  // open sequences ended, then the stream ends with UNAVAILABLE (the client
  // reconnects elsewhere); what it sends meanwhile is not read. Called under
  // the server's streams_mutex_.
  void Drain() {
    std::lock_guard lock(mutex_);
    draining_ = true;
    EndSequencesLocked();
    MaybeFinishLocked();
  }

  // Ends the sequences that have had no audio since `before`: each gets an
  // error saying so, then its final and end. Called under the server's
  // streams_mutex_.
  void EndIdleSequences(TimePoint before, std::chrono::seconds idle) {
    std::lock_guard lock(mutex_);
    for (auto& [name, sequence] : sequences_) {
      if (sequence->ended || sequence->busy || sequence->last_audio >= before) continue;
      QueueErrorLocked(sequence->request_id,
                       MakeStatus(StatusCode::kDeadlineExceeded,
                                  "sequence {} ended: no audio for {} s", name, idle.count()),
                       sequence.get());
      EndSequenceLocked(sequence);
    }
  }

  void OnReadDone(bool ok) override {
    std::unique_lock lock(mutex_);
    if (!ok || finished_) {
      reading_done_ = true;
      EndSequencesLocked();
      MaybeFinishLocked();
      return;
    }
    auto request = std::make_shared<inference::ModelInferRequest>(std::move(incoming_));
    incoming_.Clear();
    if (InSequence(*request)) {
      const bool read_more = TakeSequenceLocked(*request) && !draining_;
      lock.unlock();
      if (read_more) StartRead(&incoming_);
      return;
    }
    ++pending_;
    const bool read_more = !draining_;
    lock.unlock();
    server_.RunInfer(*request, request, context_, cancellation_,
                     [this, request](Result<InferResponse> result) {
                       inference::ModelStreamInferResponse response;
                       if (result.ok()) {
                         FillResponse(*request, *result, response.mutable_infer_response());
                       } else {
                         response.set_error_message(result.status().message());
                         response.mutable_infer_response()->set_id(request->id());
                       }
                       std::lock_guard guard(mutex_);
                       --pending_;
                       QueueLocked(std::move(response));
                     });
    if (read_more) StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    outgoing_.pop_front();
    writing_ = false;
    if (!ok) {
      outgoing_.clear();
      failed_ = true;
    }
    if (!outgoing_.empty()) {
      WriteNextLocked();
    } else {
      MaybeFinishLocked();
    }
  }

  // The client cancelled the stream or left: the requests it sent that are
  // still queued are dropped.
  void OnCancel() override { cancellation_->Cancel(); }
  void OnDone() override {
    {
      std::lock_guard lock(server_.streams_mutex_);
      server_.streams_.erase(this);
    }
    delete this;
  }

 private:
  // A piece of a sequence's audio; `end` ends the sequence after it.
  struct Chunk {
    std::string audio;
    std::string request_id;
    bool end = false;
  };
  // An open live sequence. Its session works on one chunk at a time.
  struct Sequence {
    std::string name;
    inference::InferParameter id;
    std::shared_ptr<LiveSession> session;
    // Guarded by the reactor's mutex_:
    std::string request_id;     // of the chunk under way, for its events
    std::optional<Chunk> next;  // waiting for the chunk under way
    TimePoint last_audio;       // when its last chunk came
    bool busy = false;
    bool ended = false;  // its last chunk has come
  };

  void WriteNextLocked() {
    writing_ = true;
    StartWrite(&outgoing_.front());
  }
  void QueueLocked(inference::ModelStreamInferResponse response) {
    if (failed_) return;
    outgoing_.push_back(std::move(response));
    if (!writing_) WriteNextLocked();
  }
  void MaybeFinishLocked() {
    if ((reading_done_ || draining_) && pending_ == 0 && outgoing_.empty() && !writing_ &&
        !finished_) {
      finished_ = true;
      if (failed_) {
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the client stopped reading"));
      } else if (!reading_done_) {
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
      } else {
        Finish(grpc::Status::OK);
      }
    }
  }

  // A response about `sequence` to its request `request_id`.
  static inference::ModelStreamInferResponse SequenceResponse(const Sequence& sequence,
                                                              const std::string& request_id) {
    inference::ModelStreamInferResponse response;
    auto* out = response.mutable_infer_response();
    const Model& model = sequence.session->model();
    out->set_model_name(model.config().name);
    out->set_model_version(std::to_string(model.version()));
    out->set_id(request_id);
    (*out->mutable_parameters())["sequence_id"] = sequence.id;
    return response;
  }

  void QueueErrorLocked(const std::string& request_id, const Status& status,
                        const Sequence* sequence = nullptr) {
    inference::ModelStreamInferResponse response;
    if (sequence != nullptr) {
      response = SequenceResponse(*sequence, request_id);
    } else {
      response.mutable_infer_response()->set_id(request_id);
    }
    response.set_error_message(status.message());
    QueueLocked(std::move(response));
  }

  // Takes a request of a live sequence; false when reading must wait until
  // it starts (its sequence is still on an earlier one).
  bool TakeSequenceLocked(const inference::ModelInferRequest& request) {
    auto refuse = [&](const Status& status) {
      QueueErrorLocked(request.id(), status);
      return true;
    };
    if (server_.live_ == nullptr)
      return refuse(InvalidArgument("this server runs no live sequences"));
    if (draining_) return refuse(Unavailable("the server is shutting down"));
    auto control = SequenceFromProto(request);
    if (!control.ok()) return refuse(control.status());
    auto audio = SequenceAudio(request);
    if (!audio.ok())
      return refuse(audio.status().WithContext(fmt::format("sequence {}", control->name)));
    auto it = sequences_.find(control->name);
    if (control->start) {
      if (it != sequences_.end())
        return refuse(InvalidArgument("sequence {} is already open", control->name));
      auto opened = OpenSequence(request, *control);
      if (!opened.ok()) return refuse(opened.status());
      it = sequences_.emplace(control->name, std::move(*opened)).first;
    } else if (it == sequences_.end()) {
      return refuse(InvalidArgument(
          "sequence {} is not open: its first request needs sequence_start true", control->name));
    }
    // The work holds the sequence; the table forgets it once its end has
    // come, so that its id may start a new one at once.
    const std::shared_ptr<Sequence> sequence = it->second;
    if (sequence->ended) return refuse(InvalidArgument("sequence {} has ended", control->name));
    if (control->end) sequences_.erase(it);
    sequence->ended = control->end;
    sequence->last_audio = server_.clock_.Now();
    sequence->next = Chunk{std::move(*audio), request.id(), control->end};
    ++pending_;
    if (sequence->busy) return false;
    StartChunkLocked(sequence);
    return true;
  }

  Result<std::shared_ptr<Sequence>> OpenSequence(const inference::ModelInferRequest& request,
                                                 const SequenceControl& control) {
    std::string_view encoding_name = "pcm_s16le";
    if (auto it = request.parameters().find("encoding"); it != request.parameters().end()) {
      if (!it->second.has_string_param())
        return InvalidArgument("parameter 'encoding' must be a string");
      encoding_name = it->second.string_param();
    }
    BRAID_ASSIGN_OR_RETURN(StreamEncoding encoding, ParseStreamEncoding(encoding_name));
    BRAID_ASSIGN_OR_RETURN(int rate, IntParameter(request, "sample_rate", kSpeechRate));
    BRAID_ASSIGN_OR_RETURN(int channels, IntParameter(request, "channels", 1));
    BRAID_ASSIGN_OR_RETURN(
        auto audio, AudioStream::Open(encoding, rate, channels, server_.options_.live_audio));
    auto sequence = std::make_shared<Sequence>();
    sequence->name = control.name;
    sequence->id = control.id;
    // The session lives inside the sequence and emits only while it works
    // on a chunk, which the call waits for.
    BRAID_ASSIGN_OR_RETURN(
        sequence->session,
        server_.live_->Open(request.model_name(), std::move(audio),
                            [this, raw = sequence.get()](LiveEvent event) { Emit(*raw, event); }));
    return sequence;
  }

  void StartChunkLocked(const std::shared_ptr<Sequence>& sequence) {
    Chunk chunk = std::move(*sequence->next);
    sequence->next.reset();
    sequence->busy = true;
    sequence->request_id = chunk.request_id;
    auto finish = [this, sequence] {
      sequence->session->Finish(
          [this, sequence](Status status) { ChunkDone(sequence, status, true); });
    };
    if (chunk.end && chunk.audio.empty()) return finish();
    sequence->session->Push(std::move(chunk.audio),
                            [this, sequence, finish, end = chunk.end](Status status) {
                              if (!status.ok() || !end) return ChunkDone(sequence, status, false);
                              finish();
                            });
  }

  // A sequence's chunk is done (`ended`: and the sequence with it).
  void ChunkDone(const std::shared_ptr<Sequence>& sequence, const Status& status, bool ended) {
    bool resume = false;
    {
      std::lock_guard lock(mutex_);
      --pending_;
      sequence->busy = false;
      if (!status.ok() || ended) {
        if (status.ok()) {
          auto response = SequenceResponse(*sequence, sequence->request_id);
          auto& parameters = *response.mutable_infer_response()->mutable_parameters();
          parameters["sequence_end"] = BoolParam(true);
          parameters["triton_final_response"] = BoolParam(true);
          QueueLocked(std::move(response));
        } else {
          QueueErrorLocked(sequence->request_id,
                           status.WithContext(fmt::format("sequence {}", sequence->name)),
                           sequence.get());
        }
        if (sequence->next) {
          --pending_;
          sequence->next.reset();
          resume = true;
        }
        if (auto it = sequences_.find(sequence->name);
            it != sequences_.end() && it->second == sequence) {
          sequences_.erase(it);
        }
      } else if (sequence->next) {
        StartChunkLocked(sequence);
        resume = true;
      }
      // A waiting chunk paused reading, unless the call was ending anyway.
      resume = resume && !reading_done_ && !draining_;
      MaybeFinishLocked();
    }
    if (resume) StartRead(&incoming_);
  }

  void Emit(const Sequence& sequence, const LiveEvent& event) {
    auto response = [&] {
      std::lock_guard lock(mutex_);
      return SequenceResponse(sequence, sequence.request_id);
    }();
    auto* out = response.mutable_infer_response();
    auto& parameters = *out->mutable_parameters();
    const bool final = event.kind == LiveEvent::Kind::kFinal;
    parameters["event"] = StringParam(final ? "final" : "partial");
    parameters["start"] = DoubleParam(event.start);
    parameters["end"] = DoubleParam(event.end);
    if (auto text = Tensor::FromStrings({event.text}, {1}); text.ok())
      AddOutput("text", *text, out);
    if (final) {
      std::vector<std::string> words;
      const auto count = static_cast<std::int64_t>(event.words.size());
      auto timings = Tensor::Allocate(DataType::kFp32, {count, 2});
      if (!timings.ok()) {
        std::lock_guard lock(mutex_);
        return QueueErrorLocked(sequence.request_id, timings.status(), &sequence);
      }
      auto times = timings->mutable_span<float>();
      for (std::size_t i = 0; i < event.words.size(); ++i) {
        words.push_back(event.words[i].word);
        times[2 * i] = static_cast<float>(event.words[i].start);
        times[2 * i + 1] = static_cast<float>(event.words[i].end);
      }
      if (auto list = Tensor::FromStrings(words, {count}); list.ok())
        AddOutput("words", *list, out);
      AddOutput("timings", *timings, out);
    }
    std::lock_guard lock(mutex_);
    QueueLocked(std::move(response));
  }

  // The call is ending: every open sequence ends after the audio it has,
  // its last final sent.
  void EndSequencesLocked() {
    for (auto& [name, sequence] : sequences_) EndSequenceLocked(sequence);
  }
  // `sequence` ends after the audio it has, its last final sent.
  void EndSequenceLocked(const std::shared_ptr<Sequence>& sequence) {
    if (sequence->ended) return;
    sequence->ended = true;
    if (sequence->next) {
      sequence->next->end = true;
      return;
    }
    sequence->next = Chunk{"", sequence->request_id, true};
    ++pending_;
    if (!sequence->busy) StartChunkLocked(sequence);
  }

  GrpcServer::Impl& server_;
  grpc::CallbackServerContext* context_;
  inference::ModelInferRequest incoming_;
  // Shared by every request of the stream.
  const std::shared_ptr<CancellationToken> cancellation_ = std::make_shared<CancellationToken>();
  std::mutex mutex_;
  std::deque<inference::ModelStreamInferResponse>
      outgoing_;               // guarded by mutex_; front is being written
  int pending_ = 0;            // requests read and not answered; guarded by mutex_
  bool writing_ = false;       // guarded by mutex_
  bool reading_done_ = false;  // guarded by mutex_
  bool finished_ = false;      // guarded by mutex_
  bool draining_ = false;      // guarded by mutex_
  bool failed_ = false;        // guarded by mutex_
  // Open live sequences by name; guarded by mutex_.
  std::map<std::string, std::shared_ptr<Sequence>> sequences_;
};

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
GrpcServer::Impl::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return new StreamReactor(*this, context);
}

void GrpcServer::Impl::Sweep() {
  std::unique_lock lock(sweeper_mutex_);
  while (!sweeper_wake_.wait_for(lock, std::chrono::seconds(1), [this] { return sweeper_stop_; })) {
    lock.unlock();
    {
      const TimePoint before = clock_.Now() - options_.live_idle_timeout;
      std::lock_guard streams(streams_mutex_);
      for (StreamReactor* stream : streams_)
        stream->EndIdleSequences(before, options_.live_idle_timeout);
    }
    lock.lock();
  }
}

GrpcServer::GrpcServer(InferenceService& service, Metrics& metrics, Clock& clock, LiveSpeech* live,
                       GrpcServerOptions options)
    : impl_(std::make_unique<Impl>(service, metrics, clock, live, std::move(options))) {}

GrpcServer::~GrpcServer() { Shutdown(std::chrono::seconds(0)); }

Result<std::uint16_t> GrpcServer::Start(const std::string& host, std::uint16_t port) {
  BRAID_ASSIGN_OR_RETURN(auto credentials, GrpcServerCredentials(impl_->options_.tls));
  BRAID_ASSIGN_OR_RETURN(const std::uint16_t bound, impl_->connections_.Listen(host, port));
  grpc::ServerBuilder builder;
  auto acceptor = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
      std::move(credentials));
  builder.RegisterService(impl_.get());
  const GrpcServerOptions& options = impl_->options_;
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  // What an untrusted client may hold: connections that never finish their
  // handshake or sit idle are closed, dead peers are found by keepalive
  // pings, a connection carries a bounded number of calls, and all of them
  // share one memory quota.
  const auto ms = [](std::chrono::seconds s) {
    return static_cast<int>(std::chrono::milliseconds(s).count());
  };
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, ms(options.handshake_timeout));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(options.idle_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms(options.idle_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 128);
  grpc::ResourceQuota quota("braid");
  quota.Resize(options.max_memory_bytes);
  builder.SetResourceQuota(quota);
  impl_->server_ = builder.BuildAndStart();
  if (!impl_->server_) return Unavailable("cannot start the gRPC server on {}:{}", host, port);
  impl_->connections_.Start(std::move(acceptor));
  if (impl_->live_ != nullptr) impl_->sweeper_ = std::thread([this] { impl_->Sweep(); });
  return bound;
}

void GrpcServer::Shutdown(Duration timeout) {
  if (impl_->sweeper_.joinable()) {
    {
      std::lock_guard lock(impl_->sweeper_mutex_);
      impl_->sweeper_stop_ = true;
    }
    impl_->sweeper_wake_.notify_all();
    impl_->sweeper_.join();
  }
  impl_->connections_.Stop();
  if (!impl_->server_) return;
  {
    std::lock_guard lock(impl_->streams_mutex_);
    impl_->draining_ = true;
    for (StreamReactor* stream : impl_->streams_) stream->Drain();
  }
  impl_->server_->Shutdown(
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout));
  impl_->server_->Wait();
  impl_->server_.reset();
}

}  // namespace braid
