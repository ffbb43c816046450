#include "serving/text_answer.h"

namespace braid {
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

void RunForText(WorkflowExecutor& executor, WorkflowPtr workflow, NamedTensors inputs,
                RunOptions options, CompletionText text, TextAnswerSink sink) {
  if (!options.cancellation) options.cancellation = std::make_shared<CancellationToken>();
  auto answer = std::make_shared<Answer>(std::move(text), std::move(sink));
  auto cancellation = options.cancellation;
  executor.Start(std::move(workflow), std::move(inputs), std::move(options),
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
