#include "frontends/kserve/kserve_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include <charconv>

#include "frontends/http/routes.h"
#include "frontends/status_mapping.h"

namespace braid {
namespace {

constexpr char kServerName[] = "braid";
constexpr char kServerVersion[] = "0.1.0";

std::string_view TritonType(DataType type) {
  switch (type) {
    case DataType::kBool:
      return "TYPE_BOOL";
    case DataType::kUint8:
      return "TYPE_UINT8";
    case DataType::kInt32:
      return "TYPE_INT32";
    case DataType::kInt64:
      return "TYPE_INT64";
    case DataType::kFp16:
      return "TYPE_FP16";
    case DataType::kFp32:
      return "TYPE_FP32";
    case DataType::kBytes:
      return "TYPE_STRING";
  }
  return "TYPE_INVALID";
}

std::string TensorList(const ModelConfig& config, const std::vector<TensorSpec>& specs) {
  std::vector<std::string> items;
  for (const auto& spec : specs) {
    items.push_back(fmt::format("{{\"name\":{},\"datatype\":\"{}\",\"shape\":[{}]}}",
                                JsonQuoted(spec.name), DataTypeName(spec.datatype),
                                fmt::join(ExpectedShape(config, spec, -1), ",")));
  }
  return fmt::format("[{}]", fmt::join(items, ","));
}

std::string MetadataJson(const Model& model, const std::vector<std::int64_t>& versions) {
  const ModelConfig& config = model.config();
  std::vector<std::string> version_strings;
  for (auto v : versions) version_strings.push_back(fmt::format("\"{}\"", v));
  return fmt::format(
      "{{\"name\":{},\"versions\":[{}],\"platform\":{},\"inputs\":{},\"outputs\":{}}}",
      JsonQuoted(config.name), fmt::join(version_strings, ","), JsonQuoted(ModelPlatform(config)),
      TensorList(config, config.inputs), TensorList(config, config.outputs));
}

std::string ConfigJson(const ModelConfig& config) {
  auto tensors = [](const std::vector<TensorSpec>& specs) {
    std::vector<std::string> items;
    for (const auto& spec : specs) {
      items.push_back(fmt::format("{{\"name\":{},\"data_type\":\"{}\",\"dims\":[{}]}}",
                                  JsonQuoted(spec.name), TritonType(spec.datatype),
                                  fmt::join(spec.dims, ",")));
    }
    return fmt::format("[{}]", fmt::join(items, ","));
  };
  const auto& batching = config.dynamic_batching;
  std::string dynamic = "null";
  if (batching.enabled) {
    dynamic = fmt::format(
        "{{\"preferred_batch_size\":[{}],\"max_queue_delay_microseconds\":{},\"adaptive\":{},"
        "\"priority_levels\":{},"
        "\"default_priority_level\":{},\"default_queue_policy\":{{\"max_queue_size\":{},"
        "\"default_timeout_microseconds\":{},\"timeout_action\":\"{}\",\"allow_timeout_override\":{"
        "}}}}}",
        fmt::join(batching.preferred_batch_size, ","), batching.max_queue_delay_us,
        batching.adaptive, batching.priority_levels, batching.default_priority,
        batching.default_queue_policy.max_queue_size, batching.default_queue_policy.timeout_us,
        batching.default_queue_policy.timeout_action == QueuePolicy::TimeoutAction::kDelay
            ? "DELAY"
            : "REJECT",
        batching.default_queue_policy.allow_timeout_override);
  }
  return fmt::format(
      "{{\"name\":{},\"platform\":{},\"backend\":{},\"max_batch_size\":{},\"input\":{},\"output\":{"
      "},"
      "\"instance_group\":[{{\"count\":{},\"kind\":\"{}\"}}],\"dynamic_batching\":{},"
      "\"response_cache\":{{\"enable\":{}}}}}",
      JsonQuoted(config.name), JsonQuoted(ModelPlatform(config)), JsonQuoted(config.backend),
      config.max_batch_size, tensors(config.inputs), tensors(config.outputs),
      config.instance_group.count,
      config.instance_group.kind == InstanceGroup::Kind::kGpu ? "KIND_GPU" : "KIND_CPU", dynamic,
      config.response_cache.enable);
}

std::string DurationJson(std::uint64_t count, double sum_us) {
  return fmt::format("{{\"count\":{},\"ns\":{}}}", count,
                     static_cast<std::uint64_t>(sum_us * 1000));
}

std::string StatsJson(const std::string& name, std::int64_t version, const SchedulerStats& s) {
  std::vector<std::string> batches;
  for (std::size_t b = 1; b < s.batch_sizes.size(); ++b) {
    if (s.batch_sizes[b] == 0) continue;
    batches.push_back(fmt::format(
        "{{\"batch_size\":{},\"compute_infer\":{{\"count\":{},\"ns\":0}}}}", b, s.batch_sizes[b]));
  }
  return fmt::format(
      "{{\"name\":{},\"version\":\"{}\",\"inference_count\":{},\"execution_count\":{},"
      "\"inference_stats\":{{\"success\":{},\"fail\":{},\"queue\":{},\"compute_infer\":{}}},"
      "\"batch_stats\":[{}],\"rejected\":{},\"timed_out\":{},\"cancelled\":{},\"computed_late\":{},"
      "\"queue_depth\":[{}],\"utilization\":{}}}",
      JsonQuoted(name), version, s.inferences, s.executions, DurationJson(s.success, 0),
      DurationJson(s.failure, 0), DurationJson(s.queue_time.count, s.queue_time.sum_us),
      DurationJson(s.compute_time.count, s.compute_time.sum_us), fmt::join(batches, ","),
      s.rejected, s.timed_out, s.cancelled, s.computed_late, fmt::join(s.queue_depth, ","),
      s.utilization);
}

// The body of a repository load or unload: empty, or {"parameters": {...}}
// as Triton takes it. Overriding the config or the files is not supported:
// the repository on disk is the source.
Status CheckRepositoryBody(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return Status::Ok();
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject())
    return InvalidArgument("the body must be empty or a JSON object");
  const rapidjson::Value& root = doc;
  for (const auto& member : root.GetObject()) {
    const std::string_view name(member.name.GetString(), member.name.GetStringLength());
    if (name != "parameters" || !member.value.IsObject())
      return InvalidArgument("unknown field '{}' (only an object 'parameters' is taken)", name);
    for (const auto& parameter : member.value.GetObject()) {
      const std::string_view key(parameter.name.GetString(), parameter.name.GetStringLength());
      if (key == "config" || key.starts_with("file:"))
        return InvalidArgument(
            "parameter '{}' is not supported: change the model's files in the repository", key);
      if (key != "unload_dependents") return InvalidArgument("unknown parameter '{}'", key);
    }
  }
  return Status::Ok();
}

}  // namespace

KserveApi::KserveApi(InferenceService& service, Metrics& metrics, Clock& clock, KserveLimits limits)
    : service_(service), metrics_(metrics), clock_(clock), limits_(limits) {}

void KserveApi::AddRoutes(RouteTable& routes) {
  const RouteOptions kserve{RouteAccess::kKeyed, false};
  const RouteOptions health{RouteAccess::kHealth, false};
  auto reply = [this](std::function<HttpResponse()> answer) {
    return [this, answer](HttpRequest& request, HttpResponderPtr responder, const PathParams&) {
      Reply(responder, request, answer());
    };
  };
  routes.Add("GET", "/v2/health/live", reply([] { return Json("{\"live\":true}"); }), health);
  routes.Add("GET", "/v2/health/ready", reply([this] {
               HttpResponse ready = service_.Ready() ? Json("{\"ready\":true}")
                                                     : JsonError(503, "the server is not ready");
               ready.headers.emplace_back("X-Braid-Load", fmt::format("{:.3f}", service_.Load()));
               return ready;
             }),
             health);
  routes.Add("GET", "/v2", reply([] {
               return Json(fmt::format(
                   "{{\"name\":\"{}\",\"version\":\"{}\",\"extensions\":[\"binary_tensor_data\","
                   "\"parameters\",\"statistics\",\"model_repository\",\"schedule_policy\"]}}",
                   kServerName, kServerVersion));
             }),
             kserve);
  routes.Add("GET", "/v2/models/stats", reply([this] { return Json(AllStats("")); }), kserve);
  AddModelRoute(routes, "GET", "", &KserveApi::Metadata);
  AddModelRoute(routes, "GET", "/ready", &KserveApi::ModelReady);
  AddModelRoute(routes, "GET", "/config", &KserveApi::Config);
  AddModelRoute(routes, "GET", "/stats", &KserveApi::ModelStats);
  AddModelRoute(routes, "POST", "/infer", &KserveApi::Infer);
  routes.Add("POST", "/v2/repository/index", reply([this] { return Json(Index()); }), kserve);
  for (const bool load : {true, false}) {
    routes.Add(
        "POST",
        load ? "/v2/repository/models/{model}/load" : "/v2/repository/models/{model}/unload",
        [this, load](HttpRequest& request, HttpResponderPtr responder, const PathParams& params) {
          const std::string name(params[0]);
          if (!IsValidModelName(name))
            return Reply(responder, request, JsonError(400, "invalid model name"));
          if (Status body = CheckRepositoryBody(*request.body); !body.ok())
            return Reply(responder, request, JsonError(body));
          Status status = load ? service_.Load(name) : service_.Unload(name);
          Reply(responder, request, status.ok() ? Json("{}") : JsonError(status));
        },
        {RouteAccess::kAdmin, false});
  }
}

void KserveApi::AddModelRoute(RouteTable& routes, std::string_view method, std::string_view action,
                              ModelRoute handler) {
  auto route = [this, handler](HttpRequest& request, HttpResponderPtr responder,
                               const PathParams& params) {
    const std::string name(params[0]);
    if (!IsValidModelName(name))
      return Reply(responder, request, JsonError(400, "invalid model name"));
    auto version = ParseModelVersion(params.size() > 1 ? params[1] : std::string_view());
    if (!version.ok()) return Reply(responder, request, JsonError(version.status()));
    (this->*handler)(request, std::move(responder), name, *version);
  };
  const RouteOptions options{RouteAccess::kKeyed, false};
  routes.Add(method, fmt::format("/v2/models/{{model}}{}", action), route, options);
  routes.Add(method, fmt::format("/v2/models/{{model}}/versions/{{version}}{}", action), route,
             options);
}

void KserveApi::Metadata(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                         std::int64_t version) {
  auto model = service_.GetModel(name, version);
  if (!model.ok()) return Reply(responder, request, JsonError(model.status()));
  Reply(responder, request, Json(MetadataJson(**model, LoadedVersions(name))));
}

void KserveApi::ModelReady(HttpRequest& request, HttpResponderPtr responder,
                           const std::string& name, std::int64_t version) {
  auto model = service_.GetModel(name, version);
  if (!model.ok() && !service_.ServesWorkflow(name, version))
    return Reply(responder, request, JsonError(model.status()));
  Reply(responder, request, Json(fmt::format("{{\"name\":{},\"ready\":true}}", JsonQuoted(name))));
}

void KserveApi::Config(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                       std::int64_t version) {
  auto model = service_.GetModel(name, version);
  if (!model.ok()) return Reply(responder, request, JsonError(model.status()));
  Reply(responder, request, Json(ConfigJson((*model)->config())));
}

void KserveApi::ModelStats(HttpRequest& request, HttpResponderPtr responder,
                           const std::string& name, std::int64_t) {
  Reply(responder, request, Json(AllStats(name)));
}

std::vector<std::int64_t> KserveApi::LoadedVersions(const std::string& name) const {
  std::vector<std::int64_t> versions;
  for (const auto& status : service_.Index()) {
    if (status.name == name && status.state == ModelState::kReady && status.version > 0)
      versions.push_back(status.version);
  }
  return versions;
}

std::string KserveApi::Index() const {
  std::vector<std::string> items;
  for (const auto& status : service_.Index()) {
    std::string item = fmt::format("{{\"name\":{},", JsonQuoted(status.name));
    if (status.version > 0) item += fmt::format("\"version\":\"{}\",", status.version);
    item += fmt::format("\"state\":\"{}\",\"reason\":{}}}", ModelStateName(status.state),
                        JsonQuoted(status.reason));
    items.push_back(std::move(item));
  }
  return fmt::format("[{}]", fmt::join(items, ","));
}

std::string KserveApi::AllStats(const std::string& only) const {
  std::vector<std::string> items;
  for (const auto& [name, versions] : service_.Stats()) {
    if (!only.empty() && name != only) continue;
    for (const auto& [version, stats] : versions) items.push_back(StatsJson(name, version, stats));
  }
  return fmt::format("{{\"model_stats\":[{}]}}", fmt::join(items, ","));
}

void KserveApi::Infer(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                      std::int64_t version) {
  const TimePoint received = clock_.Now();
  std::optional<std::size_t> header_length;
  if (std::string_view value = request.Header("Inference-Header-Content-Length"); !value.empty()) {
    std::size_t length = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (error != std::errc() || end != value.data() + value.size()) {
      return Reply(responder, request,
                   JsonError(400, "Inference-Header-Content-Length must be a byte count"));
    }
    header_length = length;
  }
  auto parsed = ParseInferRequest(request.body, header_length, limits_);
  if (!parsed.ok()) return Reply(responder, request, JsonError(parsed.status()));
  auto shared = std::make_shared<KserveInferRequest>(std::move(parsed).value());
  // A client that disconnects cancels its queued request.
  shared->options.cancellation = std::make_shared<CancellationToken>();
  // The callback below only posts the answer to the connection's thread.
  shared->options.light_completion = true;
  responder->OnDisconnect([token = shared->options.cancellation] { token->Cancel(); });
  auto inputs = std::move(shared->inputs);
  service_.Infer(
      name, version, std::move(inputs), shared->options,
      [this, responder, shared, name, received](Result<InferResponse> result) {
        if (!result.ok()) {
          HttpResponse error = JsonError(result.status());
          metrics_.ObserveRequest("http", service_.MetricsLabel(name), error.status,
                                  clock_.Now() - received);
          spdlog::debug("POST /v2/models/{}/infer -> {}: {}", name, error.status,
                        result.status().message());
          responder->Send(std::move(error));
          return;
        }
        // Encode on the network thread, not the scheduler's.
        responder->SendFrom([this, shared, name, received, response = std::move(result).value()] {
          auto encoded = EncodeInferResponse(*shared, response);
          HttpResponse http;
          if (!encoded.ok()) {
            http = JsonError(encoded.status());
          } else if (encoded->header_length) {
            http.content_type = "application/octet-stream";
            http.headers.emplace_back("Inference-Header-Content-Length",
                                      std::to_string(*encoded->header_length));
            http.body = std::move(encoded->body);
            for (const Tensor& tensor : encoded->binary) {
              http.tail.push_back({reinterpret_cast<const char*>(tensor.data()), tensor.byte_size(),
                                   tensor.owner()});
            }
          } else {
            http.body = std::move(encoded->body);
          }
          metrics_.ObserveRequest("http", name, http.status, clock_.Now() - received);
          spdlog::debug("POST /v2/models/{}/infer -> {} ({:.0f} us)", name, http.status,
                        ToMicros(clock_.Now() - received));
          return http;
        });
      });
}

void KserveApi::Reply(const HttpResponderPtr& responder, const HttpRequest& request,
                      HttpResponse response) {
  ReplyCounted(metrics_, responder, request, std::move(response));
}

}  // namespace braid
