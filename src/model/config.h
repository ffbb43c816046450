// ModelConfig: the parsed and validated form of models/<name>/config.yaml.
//
// Parsing is strict: an unknown key, a value of the wrong type or out of
// range, or settings that contradict each other give an InvalidArgument
// status whose message names the file, the key path and the line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/data_type.h"
#include "core/status.h"
#include "core/tensor.h"

namespace braid {

struct TensorSpec {
  std::string name;
  DataType datatype = DataType::kFp32;
  Shape dims;  // without the batch dimension; -1 marks a variable dimension
  // An input a request may leave out (a workflow's optional input; model
  // configs have none): Model::OrderInputs puts an empty tensor in its place.
  bool optional = false;
};

struct InstanceGroup {
  enum class Kind { kCpu, kGpu };
  int count = 1;
  Kind kind = Kind::kCpu;
  // Upper bound on the threads one run may use; 0: the whole compute
  // budget (core/compute_budget.h), which the run shares with whatever
  // else computes at the time.
  int intra_op_threads = 1;
  int inter_op_threads = 1;
  // Instances beyond `count` that take only a batch of a higher priority
  // level than every batch the others are running, so that an urgent
  // request starts beside a long lower-priority batch instead of behind it.
  int priority_instances = 0;
  // Instances beyond those that take only the off-peak (background) levels
  // of dynamic_batching.offpeak, one thread each at the OS's idle priority
  // (SCHED_IDLE): background work then runs only on cores nothing else
  // wants, and the regular instances leave those levels to them.
  int background_instances = 0;
};

struct QueuePolicy {
  enum class TimeoutAction { kReject, kDelay };
  std::size_t max_queue_size = 1024;  // bounded by default: memory stays bounded
  std::int64_t timeout_us = 0;        // 0: no queue timeout
  TimeoutAction timeout_action = TimeoutAction::kReject;
  bool allow_timeout_override = true;
};

struct OffpeakPolicy {
  std::vector<int> priorities;  // levels deferred while the model is busy
  double defer_above_utilization = 0.8;
};

struct DynamicBatching {
  bool enabled = false;  // true when the config has a dynamic_batching section
  std::vector<int> preferred_batch_size;
  std::int64_t max_queue_delay_us = 0;
  bool adaptive = false;
  int priority_levels = 1;
  int default_priority = 1;
  QueuePolicy default_queue_policy;
  std::map<int, QueuePolicy> priority_queue_policy;  // level → override
  OffpeakPolicy offpeak;
  // While a level has had arrivals in the last second, batches of the levels
  // below it are cut so that their expected compute stays within this (at
  // least one item each): the longest a higher-priority request should wait
  // for a lower-priority batch already running. Off-peak levels' batches
  // are always cut (background work runs between interactive runs of every
  // model). 0: no cut.
  std::int64_t priority_blocking_us = 0;
  // A request that arrives while every regular instance (and every priority
  // instance) runs a batch of a lower level stops the lowest such batch when
  // more of it is left than a batch of its own would take; that batch's
  // requests go back to the front of their queue and are not stopped again.
  // Backends that cannot stop a run (all but onnxruntime) ignore it.
  bool preempt = false;
};

// How a model's result cache keys a BYTES [1] input of encoded media.
enum class MediaKey {
  kExact,       // its bytes
  kPerceptual,  // an image: what it looks like (a near duplicate shares an earlier image's key)
  kPcm,         // audio: its decoded samples, whatever the container and metadata
};

struct ResponseCacheConfig {
  bool enable = false;
  std::int64_t ttl_s = 300;
  // `key:`; applies to the model's BYTES inputs, its other inputs are keyed exactly.
  MediaKey key = MediaKey::kExact;
};

struct Optimization {
  enum class Provider { kCpu, kCuda, kTensorRt };
  enum class Precision { kFp32, kFp16, kInt8 };
  enum class GraphLevel { kNone, kBasic, kExtended, kAll };
  Provider execution_provider = Provider::kCpu;
  // int8 and fp16 serve the model's quantized copy (model.int8.onnx, model.fp16.onnx);
  // under TensorRT they set its builder's precision for the FP32 file instead.
  Precision precision = Precision::kFp32;
  GraphLevel graph_optimization = GraphLevel::kAll;
};

struct AutoscaleConfig {
  bool enabled = false;
  int min_instances = 1;
  int max_instances = 1;
  double scale_up_utilization = 0.8;
  double scale_down_utilization = 0.3;
  std::int64_t window_s = 10;
  std::int64_t cooldown_s = 30;  // least time between a change and a scale-down
};

struct VersionPolicy {
  int latest = 1;                      // serve the newest N versions...
  std::vector<std::int64_t> specific;  // ...or exactly these, when non-empty
};

struct ModelConfig {
  std::string name;                 // the folder name
  std::filesystem::path directory;  // models/<name>
  std::string backend;
  // What the model is, for people: `braid models list`, /v1/models and the
  // playground show it (the bundled stand-ins say they have random weights).
  std::string description;
  int max_batch_size = 0;  // 0: the model takes no batch dimension
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  InstanceGroup instance_group;
  DynamicBatching dynamic_batching;
  ResponseCacheConfig response_cache;
  Optimization optimization;
  AutoscaleConfig autoscale;
  // Instances a backend loads: max_instances with autoscale, else
  // instance_group.count; then the priority instances, then the background
  // instances.
  int InstancesToLoad() const {
    return (autoscale.enabled ? autoscale.max_instances : instance_group.count) +
           instance_group.priority_instances + instance_group.background_instances;
  }
  VersionPolicy version_policy;
  std::string default_model_filename;             // empty: the backend's default
  std::map<std::string, std::string> parameters;  // backend-specific settings
  // parameters[key], or `fallback` when it is not set.
  std::string Parameter(const std::string& key, const std::string& fallback) const {
    auto it = parameters.find(key);
    return it == parameters.end() ? fallback : it->second;
  }

  std::filesystem::path config_path() const { return directory / "config.yaml"; }
  // The spec of input `name`, or nullptr.
  const TensorSpec* FindInput(std::string_view name) const;
};

// Parses `text` as the config of model `name` in `directory`; `source` is
// the file name used in error messages.
Result<ModelConfig> ParseModelConfig(std::string_view text, const std::string& name,
                                     const std::filesystem::path& directory,
                                     const std::string& source);

// Reads and parses `<directory>/config.yaml`; the model is named after the folder.
Result<ModelConfig> LoadModelConfig(const std::filesystem::path& directory);

// The Triton-style platform name: "onnxruntime_onnx" for ONNX Runtime,
// else the backend's name.
std::string ModelPlatform(const ModelConfig& config);

// True for names safe to use as a folder: [A-Za-z0-9._-], not starting with '.'.
bool IsValidModelName(std::string_view name);

}  // namespace braid
