#include "model/config.h"

#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "core/file_util.h"

namespace braid {
namespace {

// Walks a YAML tree, checking keys and types; every error names the source
// file, the dotted key path and the line.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  Status Error(const YAML::Node& node, const std::string& path, std::string_view what) const {
    std::string where =
        node.Mark().is_null() ? "" : fmt::format(" (line {})", node.Mark().line + 1);
    return InvalidArgument("{}: '{}' {}{}", source_, path, what, where);
  }

  // Fails on keys of `map` that are not in `allowed`.
  Status CheckKeys(const YAML::Node& map, const std::string& path,
                   std::initializer_list<std::string_view> allowed) const {
    if (!map.IsMap()) return Error(map, path.empty() ? "(top level)" : path, "must be a mapping");
    for (const auto& entry : map) {
      if (!entry.first.IsScalar()) {
        return InvalidArgument("{}: a key at line {} of {} is not a plain name", source_,
                               entry.first.Mark().line + 1, path.empty() ? "the top level" : path);
      }
      const std::string& key = entry.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        return InvalidArgument("{}: unknown key '{}' (line {}); expected one of: {}", source_,
                               Join(path, key), entry.first.Mark().line + 1,
                               fmt::join(allowed, ", "));
      }
    }
    return Status::Ok();
  }

  template <typename T>
  Status Scalar(const YAML::Node& map, std::string_view key, const std::string& path, T* out,
                std::string_view type_name) const {
    YAML::Node node = map[std::string(key)];
    if (!node) return Status::Ok();
    std::string full = Join(path, key);
    if (!node.IsScalar()) return Error(node, full, fmt::format("must be {}", type_name));
    try {
      *out = node.as<T>();
    } catch (const YAML::Exception&) {
      return Error(node, full, fmt::format("must be {}, not '{}'", type_name, node.Scalar()));
    }
    return Status::Ok();
  }

  Status Int(const YAML::Node& map, std::string_view key, const std::string& path, std::int64_t min,
             std::int64_t max, std::int64_t* out) const {
    BRAID_RETURN_IF_ERROR(Scalar(map, key, path, out, "an integer"));
    if (map[std::string(key)] && (*out < min || *out > max)) {
      return Error(map[std::string(key)], Join(path, key),
                   fmt::format("must be between {} and {}, not {}", min, max, *out));
    }
    return Status::Ok();
  }
  Status Int(const YAML::Node& map, std::string_view key, const std::string& path, std::int64_t min,
             std::int64_t max, int* out) const {
    std::int64_t value = *out;
    BRAID_RETURN_IF_ERROR(Int(map, key, path, min, max, &value));
    *out = static_cast<int>(value);
    return Status::Ok();
  }
  Status Fraction(const YAML::Node& map, std::string_view key, const std::string& path,
                  double* out) const {
    BRAID_RETURN_IF_ERROR(Scalar(map, key, path, out, "a number"));
    if (map[std::string(key)] && (*out < 0.0 || *out > 1.0)) {
      return Error(map[std::string(key)], Join(path, key), "must be between 0 and 1");
    }
    return Status::Ok();
  }
  Status Bool(const YAML::Node& map, std::string_view key, const std::string& path,
              bool* out) const {
    return Scalar(map, key, path, out, "true or false");
  }
  Status String(const YAML::Node& map, std::string_view key, const std::string& path,
                std::string* out) const {
    return Scalar(map, key, path, out, "a string");
  }

  template <typename Enum>
  Status Choice(const YAML::Node& map, std::string_view key, const std::string& path,
                std::initializer_list<std::pair<std::string_view, Enum>> choices, Enum* out) const {
    std::string text;
    BRAID_RETURN_IF_ERROR(String(map, key, path, &text));
    if (!map[std::string(key)]) return Status::Ok();
    for (const auto& [name, value] : choices) {
      if (name == text) {
        *out = value;
        return Status::Ok();
      }
    }
    std::vector<std::string_view> names;
    for (const auto& choice : choices) names.push_back(choice.first);
    return Error(map[std::string(key)], Join(path, key),
                 fmt::format("must be one of {}, not '{}'", fmt::join(names, ", "), text));
  }

  Status IntList(const YAML::Node& map, std::string_view key, const std::string& path,
                 std::int64_t min, std::vector<std::int64_t>* out) const {
    YAML::Node node = map[std::string(key)];
    if (!node) return Status::Ok();
    std::string full = Join(path, key);
    if (!node.IsSequence()) return Error(node, full, "must be a list of integers");
    out->clear();
    for (const auto& item : node) {
      std::int64_t value = 0;
      try {
        value = item.as<std::int64_t>();
      } catch (const YAML::Exception&) {
        return Error(item, full,
                     fmt::format("must be a list of integers, not '{}'", YAML::Dump(item)));
      }
      if (value < min)
        return Error(item, full, fmt::format("has {}, below the minimum {}", value, min));
      out->push_back(value);
    }
    return Status::Ok();
  }

  static std::string Join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

Status ParseTensorSpecs(const Reader& r, const YAML::Node& node, const std::string& key,
                        std::vector<TensorSpec>* out) {
  if (!node) return Status::Ok();
  if (!node.IsSequence()) return r.Error(node, key, "must be a list of {name, datatype, dims}");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    std::string path = fmt::format("{}[{}]", key, i);
    BRAID_RETURN_IF_ERROR(r.CheckKeys(item, path, {"name", "datatype", "dims"}));
    TensorSpec spec;
    BRAID_RETURN_IF_ERROR(r.String(item, "name", path, &spec.name));
    if (spec.name.empty()) return r.Error(item, path + ".name", "is required");
    if (!seen.insert(spec.name).second)
      return r.Error(item, path + ".name", "repeats an earlier name");
    std::string datatype;
    BRAID_RETURN_IF_ERROR(r.String(item, "datatype", path, &datatype));
    auto type = ParseDataType(datatype);
    if (!type) {
      return r.Error(
          item, path + ".datatype",
          fmt::format("must be one of BOOL, UINT8, INT32, INT64, FP16, FP32, BYTES, not '{}'",
                      datatype));
    }
    spec.datatype = *type;
    if (!item["dims"]) return r.Error(item, path + ".dims", "is required");
    BRAID_RETURN_IF_ERROR(r.IntList(item, "dims", path, -1, &spec.dims));
    for (auto dim : spec.dims) {
      if (dim == 0)
        return r.Error(item["dims"], path + ".dims", "must be positive or -1 (variable)");
    }
    out->push_back(std::move(spec));
  }
  return Status::Ok();
}

Status ParseQueuePolicy(const Reader& r, const YAML::Node& node, const std::string& path,
                        QueuePolicy* policy) {
  BRAID_RETURN_IF_ERROR(r.CheckKeys(
      node, path, {"max_queue_size", "timeout_us", "timeout_action", "allow_timeout_override"}));
  std::int64_t size = static_cast<std::int64_t>(policy->max_queue_size);
  BRAID_RETURN_IF_ERROR(r.Int(node, "max_queue_size", path, 1, 1 << 24, &size));
  policy->max_queue_size = static_cast<std::size_t>(size);
  BRAID_RETURN_IF_ERROR(r.Int(node, "timeout_us", path, 0, INT64_MAX / 1000, &policy->timeout_us));
  BRAID_RETURN_IF_ERROR(
      r.Choice<QueuePolicy::TimeoutAction>(node, "timeout_action", path,
                                           {{"reject", QueuePolicy::TimeoutAction::kReject},
                                            {"delay", QueuePolicy::TimeoutAction::kDelay}},
                                           &policy->timeout_action));
  return r.Bool(node, "allow_timeout_override", path, &policy->allow_timeout_override);
}

Status ParseDynamicBatching(const Reader& r, const YAML::Node& node, int max_batch_size,
                            DynamicBatching* batching) {
  const std::string path = "dynamic_batching";
  BRAID_RETURN_IF_ERROR(
      r.CheckKeys(node, path,
                  {"preferred_batch_size", "max_queue_delay_us", "adaptive", "priority_levels",
                   "default_priority", "queue_policy", "priority_queue_policy", "offpeak",
                   "priority_blocking_us", "preempt"}));
  batching->enabled = true;
  std::vector<std::int64_t> preferred;
  BRAID_RETURN_IF_ERROR(r.IntList(node, "preferred_batch_size", path, 1, &preferred));
  for (auto size : preferred) {
    if (size > max_batch_size) {
      return r.Error(node["preferred_batch_size"], path + ".preferred_batch_size",
                     fmt::format("has {}, above max_batch_size {}", size, max_batch_size));
    }
    batching->preferred_batch_size.push_back(static_cast<int>(size));
  }
  std::sort(batching->preferred_batch_size.begin(), batching->preferred_batch_size.end());
  BRAID_RETURN_IF_ERROR(
      r.Int(node, "max_queue_delay_us", path, 0, 60'000'000, &batching->max_queue_delay_us));
  BRAID_RETURN_IF_ERROR(r.Bool(node, "adaptive", path, &batching->adaptive));
  BRAID_RETURN_IF_ERROR(r.Bool(node, "preempt", path, &batching->preempt));
  BRAID_RETURN_IF_ERROR(
      r.Int(node, "priority_blocking_us", path, 0, 60'000'000, &batching->priority_blocking_us));
  BRAID_RETURN_IF_ERROR(r.Int(node, "priority_levels", path, 1, 16, &batching->priority_levels));
  batching->default_priority = batching->priority_levels;
  BRAID_RETURN_IF_ERROR(r.Int(node, "default_priority", path, 1, batching->priority_levels,
                              &batching->default_priority));
  if (node["queue_policy"]) {
    BRAID_RETURN_IF_ERROR(ParseQueuePolicy(r, node["queue_policy"], path + ".queue_policy",
                                           &batching->default_queue_policy));
  }
  if (const YAML::Node levels = node["priority_queue_policy"]) {
    if (!levels.IsMap()) {
      return r.Error(levels, path + ".priority_queue_policy",
                     "must map priority levels to queue policies");
    }
    for (const auto& entry : levels) {
      std::string level_path =
          fmt::format("{}.priority_queue_policy.{}", path, entry.first.Scalar());
      int level = 0;
      try {
        level = entry.first.as<int>();
      } catch (const YAML::Exception&) {
        return r.Error(entry.first, level_path, "must be keyed by a priority level number");
      }
      if (level < 1 || level > batching->priority_levels) {
        return r.Error(entry.first, level_path,
                       fmt::format("names a level outside 1..{}", batching->priority_levels));
      }
      QueuePolicy policy = batching->default_queue_policy;
      BRAID_RETURN_IF_ERROR(ParseQueuePolicy(r, entry.second, level_path, &policy));
      batching->priority_queue_policy[level] = policy;
    }
  }
  if (const YAML::Node offpeak = node["offpeak"]) {
    const std::string offpeak_path = path + ".offpeak";
    BRAID_RETURN_IF_ERROR(
        r.CheckKeys(offpeak, offpeak_path, {"priorities", "defer_above_utilization"}));
    std::vector<std::int64_t> priorities;
    BRAID_RETURN_IF_ERROR(r.IntList(offpeak, "priorities", offpeak_path, 1, &priorities));
    for (auto level : priorities) {
      if (level > batching->priority_levels) {
        return r.Error(offpeak["priorities"], offpeak_path + ".priorities",
                       fmt::format("names level {}, past priority_levels {}", level,
                                   batching->priority_levels));
      }
      batching->offpeak.priorities.push_back(static_cast<int>(level));
    }
    BRAID_RETURN_IF_ERROR(r.Fraction(offpeak, "defer_above_utilization", offpeak_path,
                                     &batching->offpeak.defer_above_utilization));
  }
  return Status::Ok();
}

Status ParseVersionPolicy(const Reader& r, const YAML::Node& node, VersionPolicy* policy) {
  const std::string path = "version_policy";
  BRAID_RETURN_IF_ERROR(r.CheckKeys(node, path, {"latest", "specific"}));
  if (node["latest"] && node["specific"])
    return r.Error(node, path, "takes latest or specific, not both");
  BRAID_RETURN_IF_ERROR(r.Int(node, "latest", path, 1, 1000, &policy->latest));
  return r.IntList(node, "specific", path, 1, &policy->specific);
}

}  // namespace

const TensorSpec* ModelConfig::FindInput(std::string_view name) const {
  for (const auto& input : inputs) {
    if (input.name == name) return &input;
  }
  return nullptr;
}

std::string ModelPlatform(const ModelConfig& config) {
  return config.backend == "onnxruntime" ? "onnxruntime_onnx" : config.backend;
}

bool IsValidModelName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

Result<ModelConfig> ParseModelConfig(std::string_view text, const std::string& name,
                                     const std::filesystem::path& directory,
                                     const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: malformed YAML at line {}: {}", source, e.mark.line + 1, e.msg);
  }
  Reader r(source);
  if (!root || root.IsNull()) return InvalidArgument("{}: the file is empty", source);
  BRAID_RETURN_IF_ERROR(
      r.CheckKeys(root, "",
                  {"backend", "description", "max_batch_size", "inputs", "outputs",
                   "instance_group", "dynamic_batching", "response_cache", "optimization",
                   "autoscale", "version_policy", "default_model_filename", "parameters"}));
  ModelConfig config;
  config.name = name;
  config.directory = directory;
  if (!IsValidModelName(name)) {
    return InvalidArgument("{}: '{}' is not a valid model name (letters, digits, '.', '-', '_')",
                           source, name);
  }

  try {
    BRAID_RETURN_IF_ERROR(r.String(root, "backend", "", &config.backend));
    if (config.backend.empty()) return r.Error(root, "backend", "is required");
    BRAID_RETURN_IF_ERROR(r.String(root, "description", "", &config.description));
    BRAID_RETURN_IF_ERROR(r.Int(root, "max_batch_size", "", 0, 1 << 20, &config.max_batch_size));
    BRAID_RETURN_IF_ERROR(ParseTensorSpecs(r, root["inputs"], "inputs", &config.inputs));
    BRAID_RETURN_IF_ERROR(ParseTensorSpecs(r, root["outputs"], "outputs", &config.outputs));
    if (config.inputs.empty()) return r.Error(root, "inputs", "must list at least one input");
    if (config.outputs.empty()) return r.Error(root, "outputs", "must list at least one output");

    if (const YAML::Node group = root["instance_group"]) {
      const std::string path = "instance_group";
      BRAID_RETURN_IF_ERROR(r.CheckKeys(group, path,
                                        {"count", "kind", "intra_op_threads", "inter_op_threads",
                                         "priority_instances", "background_instances"}));
      BRAID_RETURN_IF_ERROR(r.Int(group, "count", path, 1, 256, &config.instance_group.count));
      BRAID_RETURN_IF_ERROR(r.Choice<InstanceGroup::Kind>(
          group, "kind", path,
          {{"cpu", InstanceGroup::Kind::kCpu}, {"gpu", InstanceGroup::Kind::kGpu}},
          &config.instance_group.kind));
      BRAID_RETURN_IF_ERROR(
          r.Int(group, "intra_op_threads", path, 0, 1024, &config.instance_group.intra_op_threads));
      BRAID_RETURN_IF_ERROR(
          r.Int(group, "inter_op_threads", path, 1, 1024, &config.instance_group.inter_op_threads));
      BRAID_RETURN_IF_ERROR(r.Int(group, "priority_instances", path, 0, 16,
                                  &config.instance_group.priority_instances));
      BRAID_RETURN_IF_ERROR(r.Int(group, "background_instances", path, 0, 16,
                                  &config.instance_group.background_instances));
    }

    // With max_batch_size 0 the section still sets priorities and queue
    // policies; requests then run one at a time.
    if (const YAML::Node batching = root["dynamic_batching"]) {
      BRAID_RETURN_IF_ERROR(
          ParseDynamicBatching(r, batching, config.max_batch_size, &config.dynamic_batching));
    }
    if (config.instance_group.background_instances > 0 &&
        config.dynamic_batching.offpeak.priorities.empty()) {
      return r.Error(root["instance_group"]["background_instances"],
                     "instance_group.background_instances",
                     "needs dynamic_batching.offpeak priorities for them to serve");
    }

    if (const YAML::Node cache = root["response_cache"]) {
      BRAID_RETURN_IF_ERROR(r.CheckKeys(cache, "response_cache", {"enable", "ttl_s", "key"}));
      BRAID_RETURN_IF_ERROR(
          r.Bool(cache, "enable", "response_cache", &config.response_cache.enable));
      BRAID_RETURN_IF_ERROR(
          r.Int(cache, "ttl_s", "response_cache", 1, 365LL * 86400, &config.response_cache.ttl_s));
      BRAID_RETURN_IF_ERROR(r.Choice<MediaKey>(cache, "key", "response_cache",
                                               {{"exact", MediaKey::kExact},
                                                {"perceptual", MediaKey::kPerceptual},
                                                {"pcm", MediaKey::kPcm}},
                                               &config.response_cache.key));
      const bool media =
          std::any_of(config.inputs.begin(), config.inputs.end(),
                      [](const auto& input) { return input.datatype == DataType::kBytes; });
      if (config.response_cache.key != MediaKey::kExact && !media) {
        return r.Error(cache["key"], "response_cache.key",
                       "keys encoded media: the model needs a BYTES input");
      }
    }

    if (const YAML::Node opt = root["optimization"]) {
      const std::string path = "optimization";
      BRAID_RETURN_IF_ERROR(
          r.CheckKeys(opt, path, {"execution_provider", "precision", "graph_optimization"}));
      using O = Optimization;
      BRAID_RETURN_IF_ERROR(r.Choice<O::Provider>(opt, "execution_provider", path,
                                                  {{"cpu", O::Provider::kCpu},
                                                   {"cuda", O::Provider::kCuda},
                                                   {"tensorrt", O::Provider::kTensorRt}},
                                                  &config.optimization.execution_provider));
      BRAID_RETURN_IF_ERROR(r.Choice<O::Precision>(opt, "precision", path,
                                                   {{"fp32", O::Precision::kFp32},
                                                    {"fp16", O::Precision::kFp16},
                                                    {"int8", O::Precision::kInt8}},
                                                   &config.optimization.precision));
      BRAID_RETURN_IF_ERROR(r.Choice<O::GraphLevel>(opt, "graph_optimization", path,
                                                    {{"none", O::GraphLevel::kNone},
                                                     {"basic", O::GraphLevel::kBasic},
                                                     {"extended", O::GraphLevel::kExtended},
                                                     {"all", O::GraphLevel::kAll}},
                                                    &config.optimization.graph_optimization));
    }

    if (const YAML::Node scale = root["autoscale"]) {
      const std::string path = "autoscale";
      BRAID_RETURN_IF_ERROR(r.CheckKeys(scale, path,
                                        {"min_instances", "max_instances", "scale_up_utilization",
                                         "scale_down_utilization", "window_s", "cooldown_s"}));
      auto& a = config.autoscale;
      a.enabled = true;
      a.min_instances = config.instance_group.count;
      BRAID_RETURN_IF_ERROR(r.Int(scale, "min_instances", path, 1, 256, &a.min_instances));
      a.max_instances = a.min_instances;
      BRAID_RETURN_IF_ERROR(r.Int(scale, "max_instances", path, 1, 256, &a.max_instances));
      if (a.max_instances < a.min_instances) {
        return r.Error(scale, path + ".max_instances", "must not be below min_instances");
      }
      BRAID_RETURN_IF_ERROR(
          r.Fraction(scale, "scale_up_utilization", path, &a.scale_up_utilization));
      BRAID_RETURN_IF_ERROR(
          r.Fraction(scale, "scale_down_utilization", path, &a.scale_down_utilization));
      if (a.scale_down_utilization >= a.scale_up_utilization) {
        return r.Error(scale, path + ".scale_down_utilization",
                       "must be below scale_up_utilization");
      }
      BRAID_RETURN_IF_ERROR(r.Int(scale, "window_s", path, 1, 3600, &a.window_s));
      BRAID_RETURN_IF_ERROR(r.Int(scale, "cooldown_s", path, 0, 86400, &a.cooldown_s));
    }

    if (const YAML::Node policy = root["version_policy"]) {
      BRAID_RETURN_IF_ERROR(ParseVersionPolicy(r, policy, &config.version_policy));
    }

    BRAID_RETURN_IF_ERROR(
        r.String(root, "default_model_filename", "", &config.default_model_filename));
    if (config.default_model_filename.find('/') != std::string::npos ||
        config.default_model_filename == "..") {
      return r.Error(root["default_model_filename"], "default_model_filename",
                     "must be a file name, not a path");
    }

    if (const YAML::Node parameters = root["parameters"]) {
      if (!parameters.IsMap())
        return r.Error(parameters, "parameters", "must be a mapping of strings");
      for (const auto& entry : parameters) {
        if (!entry.second.IsScalar()) {
          return r.Error(entry.second, "parameters." + entry.first.Scalar(), "must be a scalar");
        }
        config.parameters[entry.first.Scalar()] = entry.second.Scalar();
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: {} at line {}", source, e.msg, e.mark.line + 1);
  }
  return config;
}

Result<ModelConfig> LoadModelConfig(const std::filesystem::path& directory) {
  const auto path = directory / "config.yaml";
  BRAID_ASSIGN_OR_RETURN(std::string text, ReadFile(path, 1 << 20));
  return ParseModelConfig(text, directory.filename().string(), directory, path.string());
}

}  // namespace braid
