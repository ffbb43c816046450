// The seam between braid and the libraries that run models.
//
// A backend (onnxruntime, tesseract, ...) is a factory that turns a model's
// config and version folder into instances. An instance is one independent
// execution context (an ONNX Runtime session, a Tesseract engine); the
// scheduler gives each instance to one thread at a time, so an instance need
// not be thread-safe, while different instances run concurrently.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"

namespace braid {

class ModelInstance {
 public:
  virtual ~ModelInstance() = default;

  // Runs one batch. `inputs` holds one tensor per config input, in config
  // order, already validated against the config (data type, dims, and a
  // leading batch dimension of at most max_batch_size when that is above 0).
  // On success `outputs` holds one tensor per config output, in config order,
  // with the same leading batch dimension. Blocks while computing.
  virtual Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) = 0;
  // The same, for a batch whose requests wait no longer than `time_left`
  // (the latest of their deadlines, from now; Duration::max(): none). A
  // backend that can give up (the remote backend's call) honours it; the
  // others compute as above.
  virtual Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
                         Duration time_left) {
    return Execute(inputs, outputs);
  }
};
using ModelInstancePtr = std::unique_ptr<ModelInstance>;

// Loads `config` from `version_dir` (models/<name>/<version>) and returns
// `config.instance_group.count` ready, warmed-up instances, or an error that
// names the file and what is wrong with it.
using BackendFactory = std::function<Result<std::vector<ModelInstancePtr>>(
    const ModelConfig& config, const std::filesystem::path& version_dir)>;

// Backend name → factory. Filled once at start-up, read-only afterwards.
class BackendRegistry {
 public:
  void Register(std::string name, BackendFactory factory);
  // nullptr when no backend of that name is built in.
  const BackendFactory* Find(std::string_view name) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, BackendFactory, std::less<>> factories_;
};

}  // namespace braid
