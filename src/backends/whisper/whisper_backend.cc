#include "backends/whisper/whisper_backend.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>

#include "backends/onnxruntime/onnxruntime_backend.h"
#include "core/file_util.h"
#include "preprocess/tokenizer.h"

namespace braid {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kWindowSamples = 30 * kSpeechRate;
constexpr double kSecondsPerTimestamp = 0.02;
constexpr std::int64_t kMaxInitialTimestamp = 50;  // the first timestamp within 1 s
constexpr float kSuppressed = -std::numeric_limits<float>::infinity();
// Token ids a tokenizer file may use (Whisper's vocabulary has 51865).
constexpr std::int64_t kMaxTokenId = std::int64_t{1} << 22;
// Whisper's thresholds for decoding a window again at a higher temperature.
constexpr double kMaxCompressionRatio = 2.4;
constexpr double kMinAverageLogprob = -1.0;

// How many times zlib shrinks `text` (1 for empty text).
double CompressionRatio(std::string_view text) {
  if (text.empty()) return 1;
  uLongf size = compressBound(text.size());
  std::vector<Bytef> compressed(size);
  if (compress2(compressed.data(), &size, reinterpret_cast<const Bytef*>(text.data()), text.size(),
                Z_DEFAULT_COMPRESSION) != Z_OK)
    return 1;
  return static_cast<double>(text.size()) / static_cast<double>(size);
}

// A Whisper tokenizer's strings and special tokens.
struct Vocabulary {
  std::vector<std::string> strings;  // id → byte-level token string
  std::int64_t end_of_text = -1, start = -1, transcribe = -1, translate = -1, no_timestamps = -1;
  std::int64_t timestamp_begin = -1;  // <|0.00|>; the next ids step by 0.02 s
  std::vector<std::pair<std::string, std::int64_t>> languages;  // "en" → <|en|>

  bool IsTimestamp(std::int64_t id) const { return id >= timestamp_begin; }
  double Seconds(std::int64_t id) const {
    return static_cast<double>(id - timestamp_begin) * kSecondsPerTimestamp;
  }
  // The text of the tokens below <|endoftext|>, the others skipped.
  std::string Text(std::span<const std::int64_t> tokens) const {
    std::string symbols;
    for (auto id : tokens) {
      if (id >= 0 && id < end_of_text && static_cast<std::size_t>(id) < strings.size())
        symbols += strings[id];
    }
    return BytesOfSymbols(symbols);
  }
};

// <|xx|> or <|xxx|>, lower-case letters: a language token.
std::optional<std::string> LanguageOf(std::string_view token) {
  if (!token.starts_with("<|") || !token.ends_with("|>")) return std::nullopt;
  std::string_view code = token.substr(2, token.size() - 4);
  if (code.size() < 2 || code.size() > 3) return std::nullopt;
  for (char c : code) {
    if (c < 'a' || c > 'z') return std::nullopt;
  }
  return std::string(code);
}

Status AddTokens(const rapidjson::Value& object, std::map<std::string, std::int64_t>& ids,
                 const fs::path& file) {
  if (!object.IsObject()) return InvalidArgument("{}: not an object of tokens", file.string());
  for (const auto& entry : object.GetObject()) {
    if (!entry.value.IsInt64() || entry.value.GetInt64() < 0 ||
        entry.value.GetInt64() >= kMaxTokenId)
      return InvalidArgument("{}: the id of '{}' is not a count below {}", file.string(),
                             entry.name.GetString(), kMaxTokenId);
    ids[std::string(entry.name.GetString(), entry.name.GetStringLength())] = entry.value.GetInt64();
  }
  return Status::Ok();
}

Result<rapidjson::Document> ReadJson(const fs::path& file) {
  BRAID_ASSIGN_OR_RETURN(std::string text, ReadFile(file, std::size_t{64} << 20));
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) return InvalidArgument("{}: malformed JSON", file.string());
  return doc;
}

// tokenizer.json (its vocab and added tokens), or vocab.json with added_tokens.json.
Result<Vocabulary> LoadVocabulary(const fs::path& folder) {
  std::map<std::string, std::int64_t> ids;
  std::error_code error;
  if (fs::exists(folder / "tokenizer.json", error)) {
    BRAID_ASSIGN_OR_RETURN(auto doc, ReadJson(folder / "tokenizer.json"));
    if (!doc.IsObject() || !doc.HasMember("model") || !doc["model"].IsObject() ||
        !doc["model"].HasMember("vocab"))
      return InvalidArgument("{}: no model.vocab", (folder / "tokenizer.json").string());
    BRAID_RETURN_IF_ERROR(AddTokens(doc["model"]["vocab"], ids, folder / "tokenizer.json"));
    if (doc.HasMember("added_tokens") && doc["added_tokens"].IsArray()) {
      for (const auto& token : doc["added_tokens"].GetArray()) {
        if (token.IsObject() && token.HasMember("content") && token["content"].IsString() &&
            token.HasMember("id") && token["id"].IsInt64())
          ids[token["content"].GetString()] = token["id"].GetInt64();
      }
    }
  } else if (fs::exists(folder / "vocab.json", error)) {
    BRAID_ASSIGN_OR_RETURN(auto vocab, ReadJson(folder / "vocab.json"));
    BRAID_RETURN_IF_ERROR(AddTokens(vocab, ids, folder / "vocab.json"));
    if (fs::exists(folder / "added_tokens.json", error)) {
      BRAID_ASSIGN_OR_RETURN(auto added, ReadJson(folder / "added_tokens.json"));
      BRAID_RETURN_IF_ERROR(AddTokens(added, ids, folder / "added_tokens.json"));
    }
  } else {
    return NotFound("{} has no tokenizer.json, nor vocab.json", folder.string());
  }
  Vocabulary vocabulary;
  std::int64_t largest = 0;
  for (const auto& [token, id] : ids) largest = std::max(largest, id);
  vocabulary.strings.resize(static_cast<std::size_t>(largest) + 1);
  for (const auto& [token, id] : ids) {
    vocabulary.strings[id] = token;
    if (auto language = LanguageOf(token)) vocabulary.languages.emplace_back(*language, id);
  }
  std::sort(vocabulary.languages.begin(), vocabulary.languages.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  auto id_of = [&](const char* token) {
    auto it = ids.find(token);
    return it == ids.end() ? std::int64_t{-1} : it->second;
  };
  vocabulary.end_of_text = id_of("<|endoftext|>");
  vocabulary.start = id_of("<|startoftranscript|>");
  vocabulary.transcribe = id_of("<|transcribe|>");
  vocabulary.translate = id_of("<|translate|>");
  vocabulary.no_timestamps = id_of("<|notimestamps|>");
  for (auto [name, id] : {std::pair{"<|endoftext|>", vocabulary.end_of_text},
                          {"<|startoftranscript|>", vocabulary.start},
                          {"<|notimestamps|>", vocabulary.no_timestamps}}) {
    if (id < 0) return InvalidArgument("{}: the tokenizer has no {}", folder.string(), name);
  }
  // An English-only model (generation_config.json's is_multilingual false,
  // as Optimum copies it) is prompted without language and task tokens.
  if (fs::exists(folder / "generation_config.json", error)) {
    BRAID_ASSIGN_OR_RETURN(auto generation, ReadJson(folder / "generation_config.json"));
    if (generation.IsObject() && generation.HasMember("is_multilingual") &&
        generation["is_multilingual"].IsBool() && !generation["is_multilingual"].GetBool())
      vocabulary.languages.clear();
  }
  // Older tokenizer files leave the timestamps out: they follow <|notimestamps|>.
  vocabulary.timestamp_begin = id_of("<|0.00|>");
  if (vocabulary.timestamp_begin < 0) vocabulary.timestamp_begin = vocabulary.no_timestamps + 1;
  return vocabulary;
}

// An ONNX file run by name: inputs given as a map, outputs found by name.
// Copies share the session (a merged decoder serves both decoding steps).
class Graph {
 public:
  static Result<Graph> Open(const fs::path& file) {
    BRAID_ASSIGN_OR_RETURN(std::string bytes, ReadFile(file));
    auto model = OpenOnnxModel(bytes);
    if (!model.ok()) return model.status().WithContext(file.string());
    Graph graph;
    graph.model_ = std::move(model).value();
    for (std::size_t k = 0; k < graph.model_->outputs().size(); ++k)
      graph.outputs_[graph.model_->outputs()[k].name] = k;
    return graph;
  }

  bool Takes(std::string_view name) const {
    return std::any_of(model_->inputs().begin(), model_->inputs().end(),
                       [&](const OnnxTensorInfo& info) { return info.name == name; });
  }
  const std::vector<OnnxTensorInfo>& inputs() const { return model_->inputs(); }
  const std::map<std::string, std::size_t>& outputs() const { return outputs_; }

  Result<std::vector<Tensor>> Run(const std::map<std::string, Tensor>& named) const {
    std::vector<Tensor> inputs;
    for (const auto& info : model_->inputs()) {
      auto it = named.find(info.name);
      if (it == named.end()) return Internal("nothing to give the input '{}'", info.name);
      inputs.push_back(it->second);
    }
    return model_->Run(inputs);
  }

 private:
  std::shared_ptr<OnnxModelRunner> model_;
  std::map<std::string, std::size_t> outputs_;
};

// The `logits` a decoder returned: FP32 [rows, steps, vocabulary], the
// vocabulary wider than `widest`.
Result<Tensor> Logits(const Graph& graph, const std::vector<Tensor>& outputs, std::size_t rows,
                      std::int64_t widest) {
  const Tensor& logits = outputs[graph.outputs().at("logits")];
  const Shape& shape = logits.shape();
  if (logits.dtype() != DataType::kFp32 || shape.size() != 3 ||
      shape[0] != static_cast<std::int64_t>(rows) || shape[1] < 1 || shape[2] <= widest) {
    return Internal("the decoder's logits are {} {}, not FP32 [{}, steps, more than {}]",
                    DataTypeName(logits.dtype()), ShapeToString(shape), rows, widest);
  }
  return logits;
}

// Rows `rows` of `tensor` (along its first dimension) in a buffer of their own.
Result<Tensor> Rows(const Tensor& tensor, const std::vector<std::size_t>& rows) {
  const std::size_t row_bytes = tensor.byte_size() / static_cast<std::size_t>(tensor.shape()[0]);
  Shape shape = tensor.shape();
  shape[0] = static_cast<std::int64_t>(rows.size());
  BRAID_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(tensor.dtype(), shape));
  for (std::size_t i = 0; i < rows.size(); ++i)
    std::memcpy(out.mutable_data() + i * row_bytes, tensor.data() + rows[i] * row_bytes, row_bytes);
  return out;
}

// [rows, length - from] INT64 of each row's tokens from `from` on.
template <typename Sequences>
Result<Tensor> Ids(const Sequences& rows, std::size_t from) {
  auto tokens = [](const auto& row) -> const std::vector<std::int64_t>& {
    if constexpr (requires { row.hypothesis; }) {
      return row.hypothesis.tokens;
    } else {
      return row;
    }
  };
  const std::size_t length = tokens(rows.front()).size() - from;
  BRAID_ASSIGN_OR_RETURN(Tensor ids,
                         Tensor::Allocate(DataType::kInt64, {static_cast<std::int64_t>(rows.size()),
                                                             static_cast<std::int64_t>(length)}));
  auto out = ids.mutable_span<std::int64_t>();
  for (std::size_t r = 0; r < rows.size(); ++r)
    std::copy(tokens(rows[r]).begin() + from, tokens(rows[r]).end(), out.begin() + r * length);
  return ids;
}

struct Options {
  std::string language = "auto";
  bool translate = false;
  bool timestamps = true;
  std::size_t max_new_tokens = 224;
  std::size_t beam_size = 1;  // 1: greedy
  bool fallback = true;       // decode a failed window again at higher temperatures
  bool kv_cache = true;
  AudioLimits limits;
};

// A window's greedy decoding: the tokens after the prompt (without
// <|endoftext|>) and the sum of their log-probabilities.
struct Decoded {
  std::vector<std::int64_t> tokens;
  double logprob = 0;
  float temperature = 0;
  double compression_ratio = 1;  // of the text, by zlib: repetition compresses well

  double avg_logprob() const {
    return logprob / static_cast<double>(std::max<std::size_t>(tokens.size(), 1));
  }
};

// A sequence being decoded: its tokens (the prompt first) and their log-probability.
struct Hypothesis {
  std::vector<std::int64_t> tokens;
  double logprob = 0;
};

// A row of the decoder's batch: a hypothesis of one window.
struct Row {
  std::size_t window = 0;
  Hypothesis hypothesis;
};

// A next token for a row's hypothesis, scored by the log-probability of
// the grown hypothesis.
struct Candidate {
  double score = 0;
  std::size_t row = 0;
  std::int64_t token = 0;
};

struct Segment {
  double start = 0, end = 0;
  std::string text;
  std::vector<std::int64_t> tokens;
  double avg_logprob = 0;
  float temperature = 0;
  double compression_ratio = 1;
  std::size_t seek = 0;  // the window's start, in samples
};

// One clip of a batch as it is transcribed window by window.
struct Clip {
  std::vector<float> samples;
  std::size_t seek = 0;
  bool started = false;
  std::string language;
  std::vector<Segment> segments;
  bool more() const { return !started || seek < samples.size(); }
};

class WhisperInstance : public ModelInstance {
 public:
  WhisperInstance(Graph encoder, Graph decoder, std::optional<Graph> with_past,
                  std::shared_ptr<const Vocabulary> vocabulary, Options options)
      : encoder_(std::move(encoder)),
        decoder_(std::move(decoder)),
        with_past_(std::move(with_past)),
        vocabulary_(std::move(vocabulary)),
        options_(std::move(options)) {}

  // ModelInstance
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    BRAID_ASSIGN_OR_RETURN(auto audio, inputs[0].Strings());
    std::vector<Clip> clips(audio.size());
    for (std::size_t i = 0; i < audio.size(); ++i) {
      auto decoded =
          DecodeAudio(std::as_bytes(std::span(audio[i].data(), audio[i].size())), options_.limits);
      if (!decoded.ok()) return decoded.status().WithContext(fmt::format("audio {}", i));
      clips[i].samples = std::move(decoded->samples);
    }
    for (;;) {
      std::vector<Clip*> round;
      for (auto& clip : clips) {
        if (clip.more()) round.push_back(&clip);
      }
      if (round.empty()) break;
      BRAID_RETURN_IF_ERROR(Transcribe(round));
    }
    std::vector<std::string> texts, languages, segments;
    for (const auto& clip : clips) {
      std::string text;
      for (const auto& segment : clip.segments) text += segment.text;
      texts.push_back(Trimmed(text));
      languages.push_back(clip.language);
      segments.push_back(SegmentsJson(clip.segments));
    }
    const Shape& shape = inputs[0].shape();
    outputs->clear();
    for (auto* values : {&texts, &languages, &segments}) {
      BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::FromStrings(*values, shape));
      outputs->push_back(std::move(tensor));
    }
    return Status::Ok();
  }

 private:
  // The next 30 s window of each clip: encoded together, decoded together.
  Status Transcribe(const std::vector<Clip*>& round) {
    const auto m = static_cast<std::int64_t>(round.size());
    BRAID_ASSIGN_OR_RETURN(Tensor mel,
                           Tensor::Allocate(DataType::kFp32, {m, kMelBins, kMelFrames}));
    auto features = mel.mutable_span<float>();
    std::vector<std::size_t> window(round.size());
    for (std::size_t r = 0; r < round.size(); ++r) {
      const Clip& clip = *round[r];
      window[r] =
          std::min(kWindowSamples, clip.samples.size() - std::min(clip.seek, clip.samples.size()));
      auto log_mel = WhisperLogMel(std::span(clip.samples).subspan(clip.seek, window[r]));
      std::copy(log_mel.begin(), log_mel.end(), features.begin() + r * log_mel.size());
    }
    BRAID_ASSIGN_OR_RETURN(auto encoder_out, encoder_.Run({{"input_features", mel}}));
    const Tensor& encoded = encoder_out[encoder_.outputs().at("last_hidden_state")];
    BRAID_RETURN_IF_ERROR(ChooseLanguages(round, encoded));
    std::vector<std::vector<std::int64_t>> prompts;
    for (const Clip* clip : round) prompts.push_back(Prompt(clip->language));
    BRAID_ASSIGN_OR_RETURN(auto decoded, Decode(encoded, prompts, 0));
    // Whisper's fallback: a window decoded into repetition (text that
    // compresses too well) or into unlikely tokens is sampled again, hotter.
    for (float temperature : {0.2f, 0.4f, 0.6f, 0.8f, 1.0f}) {
      std::vector<std::size_t> again;
      for (std::size_t r = 0; options_.fallback && r < decoded.size(); ++r) {
        if (decoded[r].compression_ratio > kMaxCompressionRatio ||
            decoded[r].avg_logprob() < kMinAverageLogprob)
          again.push_back(r);
      }
      if (again.empty()) break;
      BRAID_ASSIGN_OR_RETURN(Tensor rows, Rows(encoded, again));
      std::vector<std::vector<std::int64_t>> retried;
      for (auto r : again) retried.push_back(prompts[r]);
      BRAID_ASSIGN_OR_RETURN(auto redone, Decode(rows, retried, temperature));
      for (std::size_t k = 0; k < again.size(); ++k) {
        decoded[again[k]] = std::move(redone[k]);
        decoded[again[k]].temperature = temperature;
      }
    }
    for (std::size_t r = 0; r < round.size(); ++r) {
      Clip& clip = *round[r];
      const std::size_t advance = Segments(decoded[r], clip.seek, window[r], clip.segments);
      clip.seek += advance > 0 ? advance : window[r];
      clip.started = true;
    }
    return Status::Ok();
  }

  // The configured language, or the likeliest language token after
  // <|startoftranscript|> for clips that have none yet.
  Status ChooseLanguages(const std::vector<Clip*>& round, const Tensor& encoded) {
    const auto& languages = vocabulary_->languages;
    bool detect = false;
    for (Clip* clip : round) {
      if (!clip->language.empty()) continue;
      if (options_.language != "auto") {
        clip->language = options_.language;
      } else if (languages.empty()) {
        clip->language = "en";  // an English-only model
      } else {
        detect = true;
      }
    }
    if (!detect) return Status::Ok();
    const std::vector<std::vector<std::int64_t>> starts(round.size(), {vocabulary_->start});
    BRAID_ASSIGN_OR_RETURN(Tensor ids, Ids(starts, 0));
    BRAID_ASSIGN_OR_RETURN(
        auto out, Step(decoder_, {{"input_ids", ids}, {"encoder_hidden_states", encoded}}, false));
    BRAID_ASSIGN_OR_RETURN(Tensor logits, Logits(decoder_, out, round.size(), Widest()));
    const auto vocab = static_cast<std::size_t>(logits.shape()[2]);
    for (std::size_t r = 0; r < round.size(); ++r) {
      if (!round[r]->language.empty()) continue;
      auto row = logits.span<float>().subspan(r * vocab, vocab);
      auto best = std::max_element(languages.begin(), languages.end(),
                                   [&](auto& a, auto& b) { return row[a.second] < row[b.second]; });
      round[r]->language = best->first;
    }
    return Status::Ok();
  }

  // The largest id whose logit the decoding reads: <|endoftext|> and the
  // languages (timestamps past the logits' width are never offered).
  std::int64_t Widest() const {
    std::int64_t widest = vocabulary_->end_of_text;
    for (const auto& [code, id] : vocabulary_->languages) widest = std::max(widest, id);
    return widest;
  }

  std::vector<std::int64_t> Prompt(const std::string& language) const {
    std::vector<std::int64_t> prompt = {vocabulary_->start};
    for (const auto& [code, id] : vocabulary_->languages) {
      if (code == language) {
        prompt.push_back(id);
        prompt.push_back(options_.translate ? vocabulary_->translate : vocabulary_->transcribe);
      }
    }
    if (!options_.timestamps) prompt.push_back(vocabulary_->no_timestamps);
    return prompt;
  }

  // Decodes the prompts (all of one length) over the encoded windows: beam
  // search at temperature 0 (greedy with beam_size 1), sampling above it.
  // Every hypothesis of every window is a row of the decoder's batch; a row
  // whose window is done leaves it, and the cache's rows follow their
  // hypotheses' parents.
  Result<std::vector<Decoded>> Decode(const Tensor& encoded,
                                      const std::vector<std::vector<std::int64_t>>& prompts,
                                      float temperature) {
    const std::size_t prompt = prompts.front().size();
    const std::size_t width = temperature > 0 ? 1 : options_.beam_size;
    std::vector<std::vector<Hypothesis>> finished(prompts.size());
    std::vector<Row> rows;
    for (std::size_t i = 0; i < prompts.size(); ++i) rows.push_back({i, {prompts[i], 0}});
    std::map<std::string, Tensor> cache;  // past_key_values.* of the rows
    Tensor encoder_rows = encoded;
    BRAID_ASSIGN_OR_RETURN(Tensor ids, Ids(rows, 0));
    BRAID_ASSIGN_OR_RETURN(
        auto out, Step(decoder_, {{"input_ids", ids}, {"encoder_hidden_states", encoded}}, false));
    BRAID_ASSIGN_OR_RETURN(Tensor logits, Logits(decoder_, out, rows.size(), Widest()));
    // The encoder's keys and values come from the first step only: a merged
    // decoder's cache branch may give them back empty.
    auto keep_cache = [&](const Graph& graph, const std::vector<Tensor>& tensors, bool first) {
      for (const auto& [name, index] : graph.outputs()) {
        if (name.starts_with("present.") && (first || name.find(".decoder.") != std::string::npos))
          cache["past_key_values." + name.substr(8)] = tensors[index];
      }
    };
    if (with_past_) keep_cache(decoder_, out, true);
    for (;;) {
      const auto steps = static_cast<std::size_t>(logits.shape()[1]);
      const auto vocab = static_cast<std::size_t>(logits.shape()[2]);
      std::vector<std::vector<Candidate>> candidates(prompts.size());
      for (std::size_t r = 0; r < rows.size(); ++r) {
        auto row = logits.span<float>().subspan((r * steps + steps - 1) * vocab, vocab);
        const Hypothesis& hypothesis = rows[r].hypothesis;
        const std::vector<float> logprobs = LogProbs(row, hypothesis.tokens, prompt);
        auto& mine = candidates[rows[r].window];
        const auto picks = Picks(logprobs, temperature, width + 1);
        // Nothing allowed (a vocabulary without the tokens the rules want): it ends here.
        if (picks.empty()) mine.push_back({hypothesis.logprob, r, vocabulary_->end_of_text});
        for (std::int64_t token : picks)
          mine.push_back({hypothesis.logprob + logprobs[token], r, token});
      }
      std::vector<Row> next;
      std::vector<std::size_t> parents;
      for (std::size_t i = 0; i < candidates.size(); ++i) {
        auto& mine = candidates[i];
        if (mine.empty()) continue;  // done before this step
        std::sort(mine.begin(), mine.end(),
                  [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
        std::vector<Row> live;
        std::vector<std::size_t> live_parents;
        for (const Candidate& candidate : mine) {
          Hypothesis grown{rows[candidate.row].hypothesis.tokens, candidate.score};
          if (candidate.token == vocabulary_->end_of_text) {
            if (finished[i].size() < width) finished[i].push_back(std::move(grown));
            continue;
          }
          if (live.size() == width) continue;
          grown.tokens.push_back(candidate.token);
          if (grown.tokens.size() - prompt >= options_.max_new_tokens) {
            if (finished[i].size() < width) finished[i].push_back(std::move(grown));
            continue;
          }
          live.push_back({i, std::move(grown)});
          live_parents.push_back(candidate.row);
        }
        if (finished[i].size() >= width) continue;  // this window is done
        next.insert(next.end(), std::make_move_iterator(live.begin()),
                    std::make_move_iterator(live.end()));
        parents.insert(parents.end(), live_parents.begin(), live_parents.end());
      }
      if (next.empty()) break;
      std::vector<std::size_t> same(rows.size());
      std::iota(same.begin(), same.end(), 0);
      if (parents != same) {
        for (auto& [name, tensor] : cache) {
          BRAID_ASSIGN_OR_RETURN(tensor, Rows(tensor, parents));
        }
        BRAID_ASSIGN_OR_RETURN(encoder_rows, Rows(encoder_rows, parents));
      }
      rows = std::move(next);
      if (with_past_) {
        BRAID_ASSIGN_OR_RETURN(Tensor last, Ids(rows, rows[0].hypothesis.tokens.size() - 1));
        std::map<std::string, Tensor> named = cache;
        named["input_ids"] = last;
        if (with_past_->Takes("encoder_hidden_states"))
          named["encoder_hidden_states"] = encoder_rows;
        BRAID_ASSIGN_OR_RETURN(out, Step(*with_past_, std::move(named), true));
        BRAID_ASSIGN_OR_RETURN(logits, Logits(*with_past_, out, rows.size(), Widest()));
        keep_cache(*with_past_, out, false);
      } else {
        BRAID_ASSIGN_OR_RETURN(Tensor all, Ids(rows, 0));
        BRAID_ASSIGN_OR_RETURN(
            out,
            Step(decoder_, {{"input_ids", all}, {"encoder_hidden_states", encoder_rows}}, false));
        BRAID_ASSIGN_OR_RETURN(logits, Logits(decoder_, out, rows.size(), Widest()));
      }
    }
    // Each window's likeliest hypothesis per token (Whisper's ranking).
    std::vector<Decoded> decoded(prompts.size());
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      if (finished[i].empty()) continue;  // no hypothesis ever ended: nothing heard
      auto score = [&](const Hypothesis& h) {
        return h.logprob / static_cast<double>(std::max<std::size_t>(h.tokens.size() - prompt, 1));
      };
      const Hypothesis& best = *std::max_element(
          finished[i].begin(), finished[i].end(),
          [&](const Hypothesis& a, const Hypothesis& b) { return score(a) < score(b); });
      decoded[i].tokens.assign(best.tokens.begin() + prompt, best.tokens.end());
      decoded[i].logprob = best.logprob;
      decoded[i].compression_ratio = CompressionRatio(vocabulary_->Text(decoded[i].tokens));
    }
    return decoded;
  }

  // Runs a decoding step: the first (`cached` false: the prompt, no cache)
  // or a later one. A merged decoder is told which branch to take, and its
  // first step gets empty past keys and values, [rows, heads, 0, head size].
  Result<std::vector<Tensor>> Step(const Graph& graph, std::map<std::string, Tensor> named,
                                   bool cached) const {
    if (graph.Takes("use_cache_branch")) {
      BRAID_ASSIGN_OR_RETURN(Tensor branch, Tensor::Allocate(DataType::kBool, {1}));
      branch.mutable_data()[0] = std::byte{cached};
      named["use_cache_branch"] = std::move(branch);
      const std::int64_t rows = named.at("input_ids").shape()[0];
      for (const auto& info : graph.inputs()) {
        if (!info.name.starts_with("past_key_values.") || named.count(info.name)) continue;
        BRAID_ASSIGN_OR_RETURN(
            named[info.name],
            Tensor::Allocate(DataType::kFp32, {rows, info.dims[1], 0, info.dims[3]}));
      }
    }
    return graph.Run(named);
  }

  // The log-probabilities of the next token of `sequence` under Whisper's
  // rules: no special tokens but <|endoftext|> and timestamps; timestamps
  // in pairs, never decreasing, the first within 1 s, and only timestamps
  // whenever together they are likelier than any one text token.
  std::vector<float> LogProbs(std::span<const float> row, const std::vector<std::int64_t>& sequence,
                              std::size_t prompt) const {
    const Vocabulary& v = *vocabulary_;
    const auto vocab = static_cast<std::int64_t>(row.size());
    std::vector<float> logits(row.begin(), row.end());
    const std::int64_t begin = std::min(v.timestamp_begin, vocab);
    auto suppress = [&](std::int64_t from, std::int64_t to) {
      for (std::int64_t id = std::max<std::int64_t>(from, 0); id < std::min(to, vocab); ++id)
        logits[id] = kSuppressed;
    };
    suppress(v.end_of_text + 1, begin);
    if (!options_.timestamps) {
      suppress(begin, vocab);
    } else {
      std::span<const std::int64_t> generated(sequence.data() + prompt, sequence.size() - prompt);
      if (generated.empty()) {
        suppress(0, begin);
        suppress(begin + kMaxInitialTimestamp + 1, vocab);
      } else {
        const bool last = v.IsTimestamp(generated.back());
        const bool penultimate =
            generated.size() < 2 || v.IsTimestamp(generated[generated.size() - 2]);
        if (last && penultimate) suppress(begin, vocab);
        if (last && !penultimate) suppress(0, v.end_of_text);
        auto previous = std::find_if(generated.rbegin(), generated.rend(),
                                     [&](std::int64_t id) { return v.IsTimestamp(id); });
        if (previous != generated.rend())
          suppress(begin, last && !penultimate ? *previous : *previous + 1);
      }
      const double total = LogSumExp(logits, 0, vocab);
      const double timestamps = LogSumExp(logits, begin, vocab) - total;
      const double best_text = *std::max_element(logits.begin(), logits.begin() + begin) - total;
      if (timestamps > best_text) suppress(0, begin);
    }
    const auto total = static_cast<float>(LogSumExp(logits, 0, vocab));
    if (total == kSuppressed) return logits;  // nothing allowed: all stay -inf, not NaN
    for (float& logit : logits) logit -= total;
    return logits;
  }

  // The `count` likeliest tokens at temperature 0; else one drawn from the
  // distribution sharpened or flattened by the temperature.
  std::vector<std::int64_t> Picks(const std::vector<float>& logprobs, float temperature,
                                  std::size_t count) {
    if (*std::max_element(logprobs.begin(), logprobs.end()) == kSuppressed) return {};
    if (temperature > 0) {
      std::vector<double> weights(logprobs.size());
      for (std::size_t id = 0; id < logprobs.size(); ++id)
        weights[id] = std::exp(double(logprobs[id]) / temperature);
      std::discrete_distribution<std::int64_t> draw(weights.begin(), weights.end());
      return {draw(random_)};
    }
    std::vector<std::int64_t> ids(logprobs.size());
    std::iota(ids.begin(), ids.end(), 0);
    count = std::min(count, ids.size());
    std::partial_sort(ids.begin(), ids.begin() + count, ids.end(),
                      [&](std::int64_t a, std::int64_t b) { return logprobs[a] > logprobs[b]; });
    ids.resize(count);
    while (!ids.empty() && logprobs[ids.back()] == kSuppressed) ids.pop_back();
    return ids;
  }

  static double LogSumExp(const std::vector<float>& logits, std::int64_t from, std::int64_t to) {
    float peak = kSuppressed;
    for (auto id = from; id < to; ++id) peak = std::max(peak, logits[id]);
    if (peak == kSuppressed) return kSuppressed;
    double sum = 0;
    for (auto id = from; id < to; ++id) sum += std::exp(double(logits[id]) - peak);
    return peak + std::log(sum);
  }

  // Cuts a window's tokens into segments (appended to `out`, times from the
  // clip's start) and returns how far the clip's next window starts after
  // this one's: past the last complete segment, or the whole window.
  std::size_t Segments(const Decoded& decoded, std::size_t seek, std::size_t window,
                       std::vector<Segment>& out) const {
    const Vocabulary& v = *vocabulary_;
    const auto& tokens = decoded.tokens;
    const double offset = static_cast<double>(seek) / kSpeechRate;
    const double duration = static_cast<double>(window) / kSpeechRate;
    auto add = [&](double start, double end, std::span<const std::int64_t> part) {
      std::string text = v.Text(part);
      if (Trimmed(text).empty()) return;
      out.push_back({offset + start, offset + end, std::move(text),
                     std::vector<std::int64_t>(part.begin(), part.end()), decoded.avg_logprob(),
                     decoded.temperature, decoded.compression_ratio, seek});
    };
    std::vector<std::size_t> cuts;  // between two timestamps in a row
    for (std::size_t i = 1; options_.timestamps && i < tokens.size(); ++i) {
      if (v.IsTimestamp(tokens[i - 1]) && v.IsTimestamp(tokens[i])) cuts.push_back(i);
    }
    const bool single_ending = tokens.size() >= 2 && !v.IsTimestamp(tokens[tokens.size() - 2]) &&
                               v.IsTimestamp(tokens.back());
    if (cuts.empty()) {
      double end = duration;
      if (options_.timestamps && !tokens.empty() && v.IsTimestamp(tokens.back()) &&
          tokens.back() != v.timestamp_begin)
        end = v.Seconds(tokens.back());
      add(0, end, tokens);
      return window;
    }
    if (single_ending) cuts.push_back(tokens.size());
    std::size_t from = 0;
    for (std::size_t cut : cuts) {
      std::span<const std::int64_t> part(tokens.data() + from, cut - from);
      add(v.Seconds(part.front()), v.Seconds(part.back()), part);
      from = cut;
    }
    if (single_ending) return window;
    return static_cast<std::size_t>(v.Seconds(tokens[from - 1]) * kSpeechRate);
  }

  static std::string Trimmed(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\n");
    if (first == std::string_view::npos) return "";
    return std::string(text.substr(first, text.find_last_not_of(" \t\n") - first + 1));
  }

  std::string SegmentsJson(const std::vector<Segment>& segments) const {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> json(buffer);
    json.StartArray();
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const Segment& s = segments[i];
      json.StartObject();
      json.Key("id");
      json.Uint64(i);
      json.Key("seek");
      json.Uint64(s.seek * 100 / kSpeechRate);  // in 10 ms frames, as Whisper counts
      json.Key("start");
      json.Double(std::round(s.start * 100) / 100);
      json.Key("end");
      json.Double(std::round(s.end * 100) / 100);
      json.Key("text");
      const std::string text = Trimmed(s.text);
      json.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
      json.Key("tokens");
      json.StartArray();
      for (auto token : s.tokens) json.Int64(token);
      json.EndArray();
      json.Key("avg_logprob");
      json.Double(std::round(s.avg_logprob * 1e4) / 1e4);
      json.Key("temperature");
      json.Double(std::round(s.temperature * 10) / 10);
      json.Key("compression_ratio");
      json.Double(std::round(s.compression_ratio * 1e4) / 1e4);
      json.EndObject();
    }
    json.EndArray();
    return buffer.GetString();
  }

  Graph encoder_, decoder_;
  std::optional<Graph> with_past_;
  std::shared_ptr<const Vocabulary> vocabulary_;
  Options options_;
  // Sampling's draws, seeded once per instance: a sequence of requests is
  // transcribed the same way each time; one request's draws depend on what ran before.
  std::mt19937 random_{5489};
};

Result<bool> Flag(const ModelConfig& config, const char* name, const char* fallback) {
  const std::string value = config.Parameter(name, fallback);
  if (value == "true") return true;
  if (value == "false") return false;
  return InvalidArgument("{}: parameters.{} must be true or false, not '{}'",
                         config.config_path().string(), name, value);
}

Result<Options> ParseOptions(const ModelConfig& config, const Vocabulary& vocabulary,
                             const AudioLimits& server) {
  Options options;
  const std::string path = config.config_path().string();
  options.language = config.Parameter("language", "auto");
  const bool known = std::any_of(vocabulary.languages.begin(), vocabulary.languages.end(),
                                 [&](const auto& l) { return l.first == options.language; });
  if (options.language != "auto" && !known && !vocabulary.languages.empty())
    return InvalidArgument("{}: parameters.language '{}' has no token in the tokenizer", path,
                           options.language);
  const std::string task = config.Parameter("task", "transcribe");
  if (task != "transcribe" && task != "translate")
    return InvalidArgument("{}: parameters.task must be transcribe or translate", path);
  options.translate = task == "translate";
  BRAID_ASSIGN_OR_RETURN(options.timestamps, Flag(config, "timestamps", "true"));
  BRAID_ASSIGN_OR_RETURN(options.kv_cache, Flag(config, "kv_cache", "true"));
  BRAID_ASSIGN_OR_RETURN(options.fallback, Flag(config, "temperature_fallback", "true"));
  try {
    options.max_new_tokens = std::stoul(config.Parameter("max_new_tokens", "224"));
    options.beam_size = std::stoul(config.Parameter("beam_size", "1"));
    options.limits.max_seconds =
        std::min(server.max_seconds, std::stod(config.Parameter("max_seconds", "600")));
  } catch (const std::exception&) {
    return InvalidArgument(
        "{}: parameters.max_new_tokens, beam_size and max_seconds must be numbers", path);
  }
  if (options.max_new_tokens < 1 || options.max_new_tokens > 440)
    return InvalidArgument("{}: parameters.max_new_tokens must be from 1 to 440", path);
  if (options.beam_size < 1 || options.beam_size > 16)
    return InvalidArgument("{}: parameters.beam_size must be from 1 to 16", path);
  return options;
}

Status CheckInterface(const ModelConfig& config) {
  const auto& in = config.inputs;
  const auto& out = config.outputs;
  bool ok = in.size() == 1 && in[0].datatype == DataType::kBytes && out.size() == 3;
  for (std::size_t k = 0; ok && k < out.size(); ++k) {
    ok = out[k].datatype == DataType::kBytes &&
         out[k].name == std::array{"text", "language", "segments"}[k];
  }
  if (!ok) {
    return InvalidArgument(
        "{}: a whisper model takes one BYTES input (the audio) and gives three BYTES outputs: "
        "text, language, segments",
        config.config_path().string());
  }
  return Status::Ok();
}

// The first step's decoder and, with the cache, the later steps': the
// export's decoder_model.onnx and decoder_with_past_model.onnx, or its
// decoder_model_merged.onnx for both where the folder has only that.
Result<std::pair<Graph, std::optional<Graph>>> OpenDecoders(const fs::path& version_dir,
                                                            bool kv_cache) {
  std::error_code error;
  if (fs::exists(version_dir / "decoder_model.onnx", error)) {
    BRAID_ASSIGN_OR_RETURN(Graph decoder, Graph::Open(version_dir / "decoder_model.onnx"));
    if (!kv_cache) return std::pair{std::move(decoder), std::optional<Graph>()};
    BRAID_ASSIGN_OR_RETURN(Graph with_past,
                           Graph::Open(version_dir / "decoder_with_past_model.onnx"));
    return std::pair{std::move(decoder), std::optional<Graph>(std::move(with_past))};
  }
  const fs::path file = version_dir / "decoder_model_merged.onnx";
  if (!fs::exists(file, error))
    return NotFound("{} has neither decoder_model.onnx nor decoder_model_merged.onnx",
                    version_dir.string());
  BRAID_ASSIGN_OR_RETURN(Graph merged, Graph::Open(file));
  if (!merged.Takes("use_cache_branch"))
    return InvalidArgument("{}: a merged decoder takes use_cache_branch", file.string());
  for (const auto& info : merged.inputs()) {
    if (info.name.starts_with("past_key_values.") &&
        (info.dims.size() != 4 || info.dims[1] < 1 || info.dims[3] < 1))
      return InvalidArgument(
          "{}: {} must be [batch, heads, length, head size] with fixed heads "
          "and head size",
          file.string(), info.name);
  }
  std::optional<Graph> with_past;
  if (kv_cache) with_past = merged;
  return std::pair{std::move(merged), std::move(with_past)};
}

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config, const fs::path& version_dir,
                                           const AudioLimits& server) {
  BRAID_RETURN_IF_ERROR(CheckInterface(config));
  BRAID_ASSIGN_OR_RETURN(Vocabulary vocabulary, LoadVocabulary(version_dir));
  auto shared = std::make_shared<const Vocabulary>(std::move(vocabulary));
  BRAID_ASSIGN_OR_RETURN(Options options, ParseOptions(config, *shared, server));
  std::vector<ModelInstancePtr> instances;
  for (int i = 0; i < config.InstancesToLoad(); ++i) {
    BRAID_ASSIGN_OR_RETURN(Graph encoder, Graph::Open(version_dir / "encoder_model.onnx"));
    const auto& features = encoder.inputs();
    if (features.size() != 1 || features[0].name != "input_features" ||
        features[0].dims.size() != 3 || features[0].dims[1] != kMelBins)
      return InvalidArgument(
          "{}: the encoder must take input_features [batch, {}, {}] (braid computes {} mel bins)",
          (version_dir / "encoder_model.onnx").string(), kMelBins, kMelFrames, kMelBins);
    BRAID_ASSIGN_OR_RETURN(auto decoders, OpenDecoders(version_dir, options.kv_cache));
    auto& [decoder, with_past] = decoders;
    for (const Graph* graph : {&encoder, &decoder, with_past ? &*with_past : nullptr}) {
      if (graph == nullptr) continue;
      const char* wanted = graph == &encoder ? "last_hidden_state" : "logits";
      if (!graph->outputs().count(wanted))
        return InvalidArgument("{}: a Whisper export's {} has no '{}' output", version_dir.string(),
                               graph == &encoder   ? "encoder"
                               : graph == &decoder ? "decoder"
                                                   : "decoder with past",
                               wanted);
    }
    instances.push_back(std::make_unique<WhisperInstance>(std::move(encoder), std::move(decoder),
                                                          std::move(with_past), shared, options));
  }
  return instances;
}

}  // namespace

BackendFactory MakeWhisperBackend(const AudioLimits& server) {
  return [server](const ModelConfig& config, const fs::path& version_dir) {
    return Load(config, version_dir, server);
  };
}

}  // namespace braid
