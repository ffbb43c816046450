// Model: one loaded version of a model: its config and its instances.
//
// Immutable after construction apart from the instances themselves, which
// the caller must use from one thread at a time each (see ModelInstance).
// Held by shared_ptr so that unloading or reloading a model never pulls it
// from under a request that is still running on it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/backend.h"
#include "model/config.h"

namespace braid {

class Model {
 public:
  Model(ModelConfig config, std::int64_t version, std::vector<ModelInstancePtr> instances);

  const ModelConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  std::int64_t version() const { return version_; }
  std::size_t instance_count() const { return instances_.size(); }
  ModelInstance& instance(std::size_t i) { return *instances_[i]; }

  // Checks named request tensors against the config and returns them in
  // config order, ready for ModelInstance::Execute (an empty tensor for an
  // optional input left out). Errors are
  // InvalidArgument and name the input: missing, unexpected, wrong data
  // type, wrong rank or dims, batch of 0 or above max_batch_size, or batch
  // sizes that differ between inputs.
  Result<std::vector<Tensor>> OrderInputs(std::map<std::string, Tensor> inputs) const;

  // Runs `inputs` (validated, in config order) on instance `i` and checks
  // that the backend returned what the config promises. `time_left`: see
  // ModelInstance::Execute.
  Status Execute(std::size_t i, std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
                 Duration time_left = Duration::max());
  // ModelInstance::Preempt of instance `i`.
  bool Preempt(std::size_t i) { return instances_[i]->Preempt(); }

 private:
  ModelConfig config_;
  std::int64_t version_;
  std::vector<ModelInstancePtr> instances_;
};
using ModelPtr = std::shared_ptr<Model>;

// The full shape a request tensor must have for `spec` with batch size
// `batch` (ignored when max_batch_size is 0); -1 stays -1.
Shape ExpectedShape(const ModelConfig& config, const TensorSpec& spec, std::int64_t batch);

}  // namespace braid
