#include "serving/completion_text.h"

#include <algorithm>
#include <cctype>

namespace braid {

Status ReadCompletionLimits(const rapidjson::Value& object, CompletionLimits* limits) {
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (!object.HasMember(key) || object[key].IsNull()) continue;
    if (!object[key].IsUint64() || object[key].GetUint64() == 0)
      return InvalidArgument("'{}' must be a positive integer", key);
    limits->max_tokens = object[key].GetUint64();
  }
  if (!object.HasMember("stop") || object["stop"].IsNull()) return Status::Ok();
  const auto& stop = object["stop"];
  std::vector<std::string> sequences;
  if (stop.IsString()) {
    sequences.emplace_back(stop.GetString(), stop.GetStringLength());
  } else if (stop.IsArray() && stop.Size() <= 4) {
    for (const auto& sequence : stop.GetArray()) {
      if (!sequence.IsString()) return InvalidArgument("'stop' must hold strings");
      sequences.emplace_back(sequence.GetString(), sequence.GetStringLength());
    }
  } else {
    return InvalidArgument("'stop' must be a string or a list of at most 4 strings");
  }
  limits->stop = std::move(sequences);
  return Status::Ok();
}
namespace {

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

}  // namespace

CompletionText::CompletionText(std::vector<std::string> stop, std::optional<std::size_t> max_tokens,
                               const Tokenizer* tokenizer)
    : max_tokens_(max_tokens),
      tokenizer_(tokenizer),
      special_tokens_(tokenizer ? tokenizer->CountTokens("") : 0) {
  for (auto& sequence : stop) {
    if (!sequence.empty()) stop_.push_back(std::move(sequence));
  }
}

std::string CompletionText::Add(std::string_view piece) {
  if (done_) return {};
  pending_ += piece;
  std::size_t stop_at = std::string::npos;
  for (const auto& sequence : stop_) stop_at = std::min(stop_at, pending_.find(sequence));
  if (stop_at != std::string::npos) {
    pending_.resize(stop_at);
    std::string out = TakeWords(pending_, true);
    done_ = true;
    pending_.clear();
    return out;
  }
  // Hold back the longest end of the text that may begin a stop sequence.
  std::size_t hold = 0;
  for (const auto& sequence : stop_) {
    for (std::size_t k = std::min(sequence.size() - 1, pending_.size()); k > hold; --k) {
      if (std::string_view(pending_).ends_with(std::string_view(sequence).substr(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return TakeWords(std::string_view(pending_).substr(0, pending_.size() - hold), false);
}

std::string CompletionText::Finish() {
  if (done_) return {};
  std::string out = TakeWords(pending_, true);
  pending_.clear();
  done_ = true;
  return out;
}

std::string CompletionText::TakeWords(std::string_view text, bool final) {
  if (!max_tokens_) {
    std::string out(text);
    pending_.erase(0, text.size());
    return out;
  }
  // A word: the spaces before it and its characters. The last one is whole
  // only when the text ends after it (final) or a space follows it.
  std::size_t sent = 0;
  while (sent < text.size()) {
    std::size_t end = sent;
    while (end < text.size() && IsSpace(text[end])) ++end;
    while (end < text.size() && !IsSpace(text[end])) ++end;
    if (end == text.size() && !final) break;
    const std::size_t count = Count(text.substr(sent, end - sent));
    if (tokens_ + count > *max_tokens_) {
      done_ = true;
      cut_at_length_ = true;
      break;
    }
    tokens_ += count;
    sent = end;
  }
  std::string out(text.substr(0, sent));
  if (done_) {
    pending_.clear();
  } else {
    pending_.erase(0, sent);
  }
  return out;
}

std::size_t CompletionText::Count(std::string_view word) const {
  if (tokenizer_ != nullptr) return tokenizer_->CountTokens(word) - special_tokens_;
  return std::any_of(word.begin(), word.end(), [](char c) { return !IsSpace(c); }) ? 1 : 0;
}

}  // namespace braid
