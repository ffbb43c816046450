// CompletionText: a chat completion's text as it streams, cut where the
// request says to stop: at the first of its `stop` sequences (finish_reason
// "stop", the sequence itself not sent) or after `max_tokens` tokens
// (finish_reason "length"). Text that might begin a stop sequence, and a
// word whose end has not arrived, are held back until the next piece or
// Finish(). Tokens are counted per word with the request's tokenizer, or as
// words without one. Not thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "preprocess/tokenizer.h"

namespace braid {

// What a request asks of a completion's length and end, as OpenAI's chat
// API and Triton's generate extension name them.
struct CompletionLimits {
  std::optional<std::size_t> max_tokens;
  std::vector<std::string> stop;
};

// Reads "max_tokens" or "max_completion_tokens" (a positive integer) and
// "stop" (a string or a list of at most 4) from `object` into `limits`;
// members that are absent or null leave it as it is. InvalidArgument
// otherwise.
Status ReadCompletionLimits(const rapidjson::Value& object, CompletionLimits* limits);

class CompletionText {
 public:
  // `tokenizer` may be null; it must outlive this object.
  CompletionText(std::vector<std::string> stop, std::optional<std::size_t> max_tokens,
                 const Tokenizer* tokenizer);

  // Takes the next piece; returns what may be sent now. Once done(), takes
  // nothing more.
  std::string Add(std::string_view piece);
  // The end of the text: returns what was held back.
  std::string Finish();

  // A stop sequence or the token limit was reached: the rest is not wanted.
  bool done() const { return done_; }
  // "length" when cut at max_tokens, else "stop".
  const char* finish_reason() const { return cut_at_length_ ? "length" : "stop"; }
  // Tokens sent so far.
  std::size_t tokens() const { return tokens_; }

 private:
  // Sends whole words of `text` within the token limit; returns them.
  std::string TakeWords(std::string_view text, bool final);
  std::size_t Count(std::string_view word) const;

  std::vector<std::string> stop_;
  std::optional<std::size_t> max_tokens_;
  const Tokenizer* tokenizer_;
  const std::size_t special_tokens_;  // what the tokenizer counts for no text (start, end)
  std::string pending_;               // received, not yet sent
  std::size_t tokens_ = 0;
  bool done_ = false;
  bool cut_at_length_ = false;
};

}  // namespace braid
