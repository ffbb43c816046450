#include "serving/text_answer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace braid {

std::vector<const WorkflowInput*> MissingInputs(const Workflow& workflow,
                                                const NamedTensors& inputs) {
  std::vector<const WorkflowInput*> missing;
  for (const auto& input : workflow.inputs) {
    if (!input.optional && !inputs.count(input.name)) missing.push_back(&input);
  }
  return missing;
}

std::string WhatItNeeds(const Workflow& workflow, const std::vector<const WorkflowInput*>& missing,
                        std::string_view send, bool by_name) {
  std::vector<std::string> needs, takes;
  for (const auto* input : missing) {
    needs.push_back(by_name ? fmt::format("'{}' ({})", input->name, InputTypeName(input->type))
                            : std::string(InputTypeName(input->type)));
  }
  for (const auto& input : workflow.inputs) {
    if (input.optional) takes.push_back(InputTypeName(input.type));
  }
  std::string text = fmt::format(fmt::runtime(send), fmt::join(needs, " and "));
  text += fmt::format(": {} needs it", workflow.name);
  if (!takes.empty()) text += fmt::format(" (it also takes {})", fmt::join(takes, " and "));
  text += ". ";
  if (!workflow.description.empty()) text += workflow.description;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}
namespace {

// One run's answer: what the sink was given, and whether it ended.
struct Answer {
  Answer(CompletionText text, TextAnswerSink sink) : text(std::move(text)), sink(std::move(sink)) {}

  // False once the answer wants no more text.
  bool Add(std::string_view piece) {
    received = received || !piece.empty();
    const std::string sendable = text.Add(piece);
    if (!sendable.empty() && !sink.piece(sendable)) return false;
    return !text.done();
  }
  void Finish() {
    ended = true;
    const std::string rest = text.Finish();
    if (!rest.empty()) sink.piece(rest);
    sink.done(text.finish_reason(), text.tokens());
  }

  CompletionText text;
  TextAnswerSink sink;
  bool received = false;
  bool ended = false;
};

}  // namespace

void RunForText(InferenceService& service, const std::string& workflow, NamedTensors inputs,
                RunOptions options, CompletionText text, TextAnswerSink sink) {
  if (!options.cancellation) options.cancellation = std::make_shared<CancellationToken>();
  auto answer = std::make_shared<Answer>(std::move(text), std::move(sink));
  auto cancellation = options.cancellation;
  service.Run(workflow, std::move(inputs), std::move(options),
              [answer, cancellation](const WorkflowEvent& event) {
                using Type = WorkflowEvent::Type;
                if (answer->ended) return;
                if (event.type == Type::kTextChunk) {
                  if (answer->Add(event.text)) return;
                  // Cut short (max_tokens, a stop sequence) or the client left.
                  cancellation->Cancel();
                  return answer->Finish();
                }
                if (event.type == Type::kError) {
                  answer->ended = true;
                  return answer->sink.failed(event.error_code, event.text);
                }
                if (event.type != Type::kWorkflowFinished) return;
                if (!answer->received) {  // nothing streamed: the first text output
                  for (const auto& [name, tensor] : event.outputs) {
                    if (tensor.dtype() == DataType::kBytes) {
                      answer->Add(FirstString(tensor));
                      break;
                    }
                  }
                }
                answer->Finish();
              });
}

}  // namespace braid
