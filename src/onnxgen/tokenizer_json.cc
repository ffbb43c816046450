#include "onnxgen/tokenizer_json.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace braid::onnxgen {

std::string TokenizerJson(const BpeTokenizerFile& file) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> json(buffer);
  json.StartObject();
  json.Key("version");
  json.String("1.0");
  json.Key("added_tokens");
  json.StartArray();
  for (const auto& [id, content] : file.added) {
    json.StartObject();
    json.Key("id");
    json.Int64(id);
    json.Key("content");
    json.String(content.c_str());
    json.Key("special");
    json.Bool(true);
    json.EndObject();
  }
  json.EndArray();
  json.Key("model");
  json.StartObject();
  json.Key("type");
  json.String("BPE");
  if (!file.end_of_word_suffix.empty()) {
    json.Key("end_of_word_suffix");
    json.String(file.end_of_word_suffix.c_str());
  }
  if (!file.unk_token.empty()) {
    json.Key("unk_token");
    json.String(file.unk_token.c_str());
  }
  json.Key("vocab");
  json.StartObject();
  for (const auto& [token, id] : file.vocab) {
    json.Key(token.c_str());
    json.Int64(id);
  }
  json.EndObject();
  json.Key("merges");
  json.StartArray();
  for (const auto& [left, right] : file.merges) json.String((left + " " + right).c_str());
  json.EndArray();
  json.EndObject();
  json.EndObject();
  return buffer.GetString();
}

}  // namespace braid::onnxgen
