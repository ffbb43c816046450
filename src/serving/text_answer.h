// A workflow run for its text answer, as chat completions and the KServe
// generate extension serve it: the text its template and remote.chat nodes
// stream, cut by the request's stop sequences and token limit
// (CompletionText), or else its first text output at the end.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "serving/completion_text.h"
#include "serving/inference_service.h"
#include "workflow/executor.h"

namespace braid {

struct TextAnswerSink {
  // Text that may be sent now (non-empty). Return false once the client has
  // gone: the run is stopped.
  std::function<bool(const std::string& piece)> piece;
  // The answer ended: finish_reason "stop" or "length"; `tokens` sent.
  std::function<void(const char* finish_reason, std::size_t tokens)> done;
  // The run failed before its answer ended.
  std::function<void(StatusCode code, const std::string& message)> failed;
};

// The inputs `workflow` requires that `inputs` lacks.
std::vector<const WorkflowInput*> MissingInputs(const Workflow& workflow,
                                                const NamedTensors& inputs);

// The answer to a request that lacks inputs the workflow needs (Dify's
// credential check sends only "ping"): what to send, not an error.
// `send` is how, with {} for the inputs, e.g. "Attach {} to the message";
// they are named by kind ("audio"), or with `by_name` by name and kind
// ("'clip' (audio)") for APIs whose requests name them.
std::string WhatItNeeds(const Workflow& workflow, const std::vector<const WorkflowInput*>& missing,
                        std::string_view send, bool by_name = false);

// Starts a run of the workflow `service` serves under `workflow`
// (InferenceService::Run); `options.cancellation` is created when absent.
// The sink's calls come one at a time, exactly one of done or failed last.
void RunForText(InferenceService& service, const std::string& workflow, NamedTensors inputs,
                RunOptions options, CompletionText text, TextAnswerSink sink);

}  // namespace braid
