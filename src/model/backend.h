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
  // Asks the run in progress on another thread to stop early: its Execute
  // then returns an error. False when the backend cannot stop a run (the
  // default). An ask that comes before a run begins or after it ends stops
  // nothing.
  virtual bool Preempt() { return false; }
};
using ModelInstancePtr = std::unique_ptr<ModelInstance>;

// Loads `config` from `version_dir` (models/<name>/<version>) and returns
// `config.instance_group.count` ready, warmed-up instances, or an error that
// names the file and what is wrong with it.
using BackendFactory = std::function<Result<std::vector<ModelInstancePtr>>(
    const ModelConfig& config, const std::filesystem::path& version_dir)>;

// A word a recogniser heard, with its times in seconds.
struct RecognisedWord {
  std::string word;
  double start = 0;
  double end = 0;
};

// A speech recogniser that takes audio as it arrives (live input): one
// utterance at a time, 16 kHz mono samples fed in pieces of any size. Not
// thread-safe; a live stream owns one while it runs.
class StreamingRecogniser {
 public:
  virtual ~StreamingRecogniser() = default;
  virtual Status Begin() = 0;
  virtual Status Feed(std::span<const std::int16_t> samples) = 0;
  // The best guess so far for the utterance under way (may change).
  virtual std::string Partial() = 0;
  // Ends the utterance: its words, times from its first sample.
  virtual Result<std::vector<RecognisedWord>> End() = 0;
  // Forgets what earlier streams taught it (a running normalisation), so
  // that a stream's words do not depend on which streams the recogniser
  // served before. Between utterances only.
  virtual void Reset() = 0;
};
// Opens a recogniser for a model of the backend (loads its data: slow).
using StreamingRecogniserFactory =
    std::function<Result<std::unique_ptr<StreamingRecogniser>>(const ModelConfig& config)>;

// Backend name → factory. Filled once at start-up, read-only afterwards.
class BackendRegistry {
 public:
  void Register(std::string name, BackendFactory factory);
  // nullptr when no backend of that name is built in.
  const BackendFactory* Find(std::string_view name) const;
  std::vector<std::string> Names() const;

  // Backends that also recognise speech as it arrives.
  void RegisterStreamingRecognisers(std::string name, StreamingRecogniserFactory factory);
  const StreamingRecogniserFactory* FindStreamingRecognisers(std::string_view name) const;

 private:
  std::map<std::string, BackendFactory, std::less<>> factories_;
  std::map<std::string, StreamingRecogniserFactory, std::less<>> streaming_recognisers_;
};

}  // namespace braid
