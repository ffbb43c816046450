#include "frontends/http/routes.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include <charconv>

#include "core/credentials.h"
#include "frontends/http/load_report.h"
#include "frontends/kserve/kserve.h"
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

std::string_view BearerToken(const HttpRequest& request) {
  if (auto header = request.Header("Authorization"); !header.empty())
    return BearerCredential(header);
  return WebSocketBearer(request);
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

// Whether `request` carries the key its endpoint needs (the admin key for
// repository load and unload when one is set).
Status AuthorizeRequest(const ApiOptions& options, const HttpRequest& request, bool admin) {
  const std::string& key =
      admin && !options.admin_key.empty() ? options.admin_key : options.api_key;
  if (key.empty()) return Status::Ok();
  if (KeyMatches(BearerToken(request), key)) return Status::Ok();
  return MakeStatus(StatusCode::kUnauthenticated,
                    "{} key is required: send 'Authorization: Bearer KEY'",
                    admin && !options.admin_key.empty() ? "an admin" : "an API");
}

class ApiHandler {
 public:
  ApiHandler(InferenceService& service, Metrics& metrics, Clock& clock, ApiOptions options,
             std::shared_ptr<RouteTable> routes)
      : service_(service),
        metrics_(metrics),
        clock_(clock),
        options_(std::move(options)),
        routes_(std::move(routes)),
        load_reporter_({[this] { return service_.Load(); },
                        [this] { return double(service_.QueuedItems()); }}) {
    AddKserveRoutes();
  }

  void operator()(HttpRequest& request, HttpResponderPtr responder) {
    load_reporter_.Count();
    if (auto format = ParseLoadReportFormat(request.Header("endpoint-load-metrics-format")))
      responder =
          WithLoadReport(std::move(responder), EncodeLoadReport(load_reporter_.Current(), *format));
    const RouteTable::Match match = routes_->Find(request.method, request.path);
    const bool found = match.route != nullptr || !match.allowed.empty();
    // What no route takes is answered after the key check, like the rest:
    // a client without the key learns nothing of the endpoints.
    const RouteAccess access = found ? match.options.access : RouteAccess::kKeyed;
    if (access == RouteAccess::kKeyed || access == RouteAccess::kAdmin ||
        (access == RouteAccess::kHealth && options_.protect_health)) {
      if (Status auth = AuthorizeRequest(options_, request, access == RouteAccess::kAdmin);
          !auth.ok())
        return Reply(responder, request, JsonError(auth));
    }
    if (!found)
      return Reply(responder, request,
                   JsonError(404, routes_->NoEndpointMessage(request.method, request.path)));
    if (match.route == nullptr) {
      HttpResponse response = JsonError(
          405, fmt::format("{} takes {}, not {}", request.path, match.allowed, request.method));
      response.headers.emplace_back("Allow", match.allowed);
      return Reply(responder, request, std::move(response));
    }
    if (const std::string_view type = request.Header("Content-Type");
        match.options.check_json_depth && !request.body->empty() &&
        (type.empty() || type.find("json") != std::string_view::npos)) {
      if (Status depth = CheckJsonDepth(*request.body, options_.limits.max_json_depth); !depth.ok())
        return Reply(responder, request, JsonError(depth));
    }
    (*match.route)(request, std::move(responder), match.params);
  }

 private:
  // A handler of a /v2/models/NAME[/versions/V]/... endpoint: the model's
  // name and version (0: the latest), both checked.
  using ModelRoute = void (ApiHandler::*)(HttpRequest&, HttpResponderPtr, const std::string&,
                                          std::int64_t);

  // The KServe v2 endpoints and health; none but infer reads a body, whose
  // own parser bounds its depth.
  void AddKserveRoutes() {
    RouteTable& routes = *routes_;
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
    AddModelRoute("GET", "", &ApiHandler::Metadata);
    AddModelRoute("GET", "/ready", &ApiHandler::ModelReady);
    AddModelRoute("GET", "/config", &ApiHandler::Config);
    AddModelRoute("GET", "/stats", &ApiHandler::ModelStats);
    AddModelRoute("POST", "/infer", &ApiHandler::Infer);
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

  // `method` /v2/models/{model}`action` and the same under /versions/{version}.
  void AddModelRoute(std::string_view method, std::string_view action, ModelRoute handler) {
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
    routes_->Add(method, fmt::format("/v2/models/{{model}}{}", action), route, options);
    routes_->Add(method, fmt::format("/v2/models/{{model}}/versions/{{version}}{}", action), route,
                 options);
  }

  void Metadata(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                std::int64_t version) {
    auto model = service_.GetModel(name, version);
    if (!model.ok()) return Reply(responder, request, JsonError(model.status()));
    Reply(responder, request, Json(MetadataJson(**model, LoadedVersions(name))));
  }

  void ModelReady(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                  std::int64_t version) {
    auto model = service_.GetModel(name, version);
    if (!model.ok()) return Reply(responder, request, JsonError(model.status()));
    Reply(responder, request,
          Json(fmt::format("{{\"name\":{},\"ready\":true}}", JsonQuoted(name))));
  }

  void Config(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
              std::int64_t version) {
    auto model = service_.GetModel(name, version);
    if (!model.ok()) return Reply(responder, request, JsonError(model.status()));
    Reply(responder, request, Json(ConfigJson((*model)->config())));
  }

  void ModelStats(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                  std::int64_t) {
    Reply(responder, request, Json(AllStats(name)));
  }

  void Reply(const HttpResponderPtr& responder, const HttpRequest& request, HttpResponse response) {
    metrics_.ObserveRequest("http", "", response.status, Duration{});
    spdlog::debug("{} {} -> {}", request.method, request.target, response.status);
    responder->Send(std::move(response));
  }

  std::vector<std::int64_t> LoadedVersions(const std::string& name) const {
    std::vector<std::int64_t> versions;
    for (const auto& status : service_.Index()) {
      if (status.name == name && status.state == ModelState::kReady && status.version > 0)
        versions.push_back(status.version);
    }
    return versions;
  }

  std::string Index() const {
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

  std::string AllStats(const std::string& only) const {
    std::vector<std::string> items;
    for (const auto& [name, versions] : service_.Stats()) {
      if (!only.empty() && name != only) continue;
      for (const auto& [version, stats] : versions)
        items.push_back(StatsJson(name, version, stats));
    }
    return fmt::format("{{\"model_stats\":[{}]}}", fmt::join(items, ","));
  }

  void Infer(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
             std::int64_t version) {
    const TimePoint received = clock_.Now();
    std::optional<std::size_t> header_length;
    if (std::string_view value = request.Header("Inference-Header-Content-Length");
        !value.empty()) {
      std::size_t length = 0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (error != std::errc() || end != value.data() + value.size()) {
        return Reply(responder, request,
                     JsonError(400, "Inference-Header-Content-Length must be a byte count"));
      }
      header_length = length;
    }
    auto parsed = ParseInferRequest(request.body, header_length, options_.limits);
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
                http.tail.push_back({reinterpret_cast<const char*>(tensor.data()),
                                     tensor.byte_size(), tensor.owner()});
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

  InferenceService& service_;
  Metrics& metrics_;
  Clock& clock_;
  const ApiOptions options_;
  std::shared_ptr<RouteTable> routes_;
  LoadReporter load_reporter_;  // ORCA reports on answers (load_report.h)
};

}  // namespace

std::map<std::string, std::map<std::int64_t, ModelMetricsInput>> CollectModelMetrics(
    InferenceService& service) {
  std::map<std::string, std::map<std::int64_t, ModelMetricsInput>> models;
  for (auto& [name, versions] : service.Stats()) {
    for (auto& [version, stats] : versions) models[name][version] = {std::move(stats)};
  }
  return models;
}

HttpAdmission MakeApiAdmission(ApiOptions options) {
  if (options.api_key.empty() && options.admin_key.empty() && !options.limiter) return nullptr;
  return [options = std::move(options)](const HttpRequest& head,
                                        bool has_body) -> std::optional<HttpResponse> {
    // Health probes come from the operator's load balancer: never limited.
    if (options.limiter && !head.path.starts_with("/v2/health/")) {
      if (auto wait = options.limiter->Take(head.peer)) {
        HttpResponse refusal = JsonError(429, "too many requests from this address; retry later");
        const auto seconds = std::chrono::ceil<std::chrono::seconds>(*wait).count();
        refusal.headers.emplace_back("Retry-After", std::to_string(std::max<long>(1, seconds)));
        return refusal;
      }
    }
    if (!has_body) return std::nullopt;
    const bool admin = head.path.starts_with("/v2/repository/models/");
    if (Status auth = AuthorizeRequest(options, head, admin); !auth.ok()) return JsonError(auth);
    return std::nullopt;
  };
}

HttpHandler MakeApiHandler(InferenceService& service, Metrics& metrics, Clock& clock,
                           ApiOptions options, std::shared_ptr<RouteTable> routes) {
  // Shared, so that callbacks may keep pointing at it however the function is moved.
  auto handler =
      std::make_shared<ApiHandler>(service, metrics, clock, std::move(options), std::move(routes));
  return [handler](HttpRequest& request, HttpResponderPtr responder) {
    (*handler)(request, std::move(responder));
  };
}

HttpHandler MakeMetricsHandler(InferenceService& service, Metrics& metrics, std::string api_key,
                               std::vector<MetricsSource> more) {
  return [&service, &metrics, api_key, more = std::move(more)](HttpRequest& request,
                                                               HttpResponderPtr responder) {
    if (request.path != "/metrics")
      return responder->Send(JsonError(404, "metrics are at /metrics"));
    if (!api_key.empty() && !KeyMatches(BearerToken(request), api_key))
      return responder->Send(
          JsonError(401, "an API key is required: send 'Authorization: Bearer KEY'"));
    HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = metrics.Render(CollectModelMetrics(service), service.in_flight(),
                                   service.cache_stats(), service.budget_stats());
    for (const auto& source : more) source(response.body);
    responder->Send(std::move(response));
  };
}

}  // namespace braid
