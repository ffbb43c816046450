#include "frontends/collections/collections_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "core/base64.h"
#include "frontends/kserve/kserve.h"
#include "frontends/status_mapping.h"

namespace braid {
namespace {

constexpr std::size_t kMaxTopK = 1000;
constexpr std::size_t kMaxTextBytes = 64 << 10;
constexpr std::size_t kMaxMetadataBytes = 16 << 10;
constexpr std::size_t kMaxNameBytes = 1024;  // an item's display name

std::string Serialise(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string InfoJson(const CollectionInfo& info) {
  return fmt::format(R"({{"name":{},"space":"{}","dimensions":{},"count":{},"index":"{}"}})",
                     JsonQuoted(info.name), SpaceName(info.space), Dimensions(info.space),
                     info.count, IndexKindName(info.index));
}

// What an item or a query holds: content to embed, or the client's vector.
struct Parsed {
  Item item;
  std::optional<EmbedItem> content;
  std::optional<std::vector<float>> vector;
};

Status ParseImage(const rapidjson::Value& image, FileStore& files, Parsed& parsed) {
  if (image.IsObject()) {
    if (!image.HasMember("upload_file_id") || !image["upload_file_id"].IsString())
      return InvalidArgument("'image' must be a data URL, base64, or {{upload_file_id}}");
    BRAID_ASSIGN_OR_RETURN(StoredFile file, files.Get(image["upload_file_id"].GetString()));
    parsed.item.name = file.name;
    parsed.item.media_type = file.media_type;
    parsed.content = EmbedItem{EmbedItem::Kind::kImage, std::move(file.bytes)};
    return Status::Ok();
  }
  if (!image.IsString())
    return InvalidArgument("'image' must be a data URL, base64, or {{upload_file_id}}");
  const std::string_view text(image.GetString(), image.GetStringLength());
  if (text.starts_with("data:")) {
    BRAID_ASSIGN_OR_RETURN(DataUrl url, ParseDataUrl(text));
    if (!url.media_type.starts_with("image/"))
      return InvalidArgument("'image' is a data URL of type {}, not an image", url.media_type);
    parsed.item.media_type = url.media_type;
    parsed.content = EmbedItem{EmbedItem::Kind::kImage, std::move(url.data)};
    return Status::Ok();
  }
  BRAID_ASSIGN_OR_RETURN(std::string bytes, Base64Decode(text));
  parsed.content = EmbedItem{EmbedItem::Kind::kImage, std::move(bytes)};
  return Status::Ok();
}

// {text | image | vector} (an item adds id, metadata and name). With a
// vector, text and image are kept as what the item holds, not embedded.
Result<Parsed> ParseContent(const rapidjson::Value& value, FileStore& files, bool item) {
  Parsed parsed;
  if (!item && value.IsString()) {
    parsed.content = EmbedItem{EmbedItem::Kind::kText, value.GetString()};
    if (parsed.content->data.empty() || !IsValidUtf8(parsed.content->data))
      return InvalidArgument("'text' must be non-empty UTF-8");
    return parsed;
  }
  if (!value.IsObject()) return InvalidArgument("must be an object");
  for (const auto& member : value.GetObject()) {
    const std::string_view key = member.name.GetString();
    const bool known = key == "text" || key == "image" || key == "vector" ||
                       (item && (key == "id" || key == "metadata" || key == "name"));
    if (!known) return InvalidArgument("unknown field '{}'", key);
  }
  const int contents = value.HasMember("text") + value.HasMember("image");
  if (contents > 1) return InvalidArgument("give 'text' or 'image', not both");
  if (contents == 0 && !value.HasMember("vector"))
    return InvalidArgument("needs 'text', 'image' or 'vector'");
  if (value.HasMember("text")) {
    const auto& text = value["text"];
    if (!text.IsString() || text.GetStringLength() == 0 ||
        !IsValidUtf8({text.GetString(), text.GetStringLength()}))
      return InvalidArgument("'text' must be non-empty UTF-8");
    if (text.GetStringLength() > kMaxTextBytes)
      return MakeStatus(StatusCode::kTooLarge, "'text' is longer than {} bytes", kMaxTextBytes);
    parsed.item.text = text.GetString();
    parsed.content = EmbedItem{EmbedItem::Kind::kText, parsed.item.text};
  }
  if (value.HasMember("image")) BRAID_RETURN_IF_ERROR(ParseImage(value["image"], files, parsed));
  if (value.HasMember("vector")) {
    const auto& vector = value["vector"];
    if (!vector.IsArray()) return InvalidArgument("'vector' must be an array of numbers");
    parsed.vector.emplace();
    for (const auto& x : vector.GetArray()) {
      if (!x.IsNumber()) return InvalidArgument("'vector' must be an array of numbers");
      parsed.vector->push_back(static_cast<float>(x.GetDouble()));
    }
  }
  if (!item) return parsed;
  if (value.HasMember("id")) {
    if (!value["id"].IsString()) return InvalidArgument("'id' must be a string");
    parsed.item.id = value["id"].GetString();
    if (parsed.item.id.empty()) return InvalidArgument("'id' must not be empty");
  }
  if (value.HasMember("name")) {
    if (!value["name"].IsString() || !IsValidUtf8(value["name"].GetString()))
      return InvalidArgument("'name' must be a UTF-8 string");
    parsed.item.name = value["name"].GetString();
    if (parsed.item.name.size() > kMaxNameBytes)
      return MakeStatus(StatusCode::kTooLarge, "'name' is longer than {} bytes", kMaxNameBytes);
  }
  if (value.HasMember("metadata")) {
    if (!value["metadata"].IsObject()) return InvalidArgument("'metadata' must be an object");
    parsed.item.metadata = Serialise(value["metadata"]);
    if (parsed.item.metadata.size() > kMaxMetadataBytes) {
      return MakeStatus(StatusCode::kTooLarge, "'metadata' is larger than {} bytes",
                        kMaxMetadataBytes);
    }
  }
  return parsed;
}

Status CheckLength(const std::vector<float>& vector, EmbeddingSpace space) {
  if (vector.size() != static_cast<std::size_t>(Dimensions(space))) {
    return InvalidArgument("'vector' has {} values; {} vectors have {}", vector.size(),
                           SpaceName(space), Dimensions(space));
  }
  return Status::Ok();
}

}  // namespace

CollectionsApi::CollectionsApi(CollectionStore& store, Embedder& embedder, FileStore& files,
                               ThreadPool& pool)
    : store_(store), embedder_(embedder), files_(files), pool_(pool) {}

Route CollectionsApi::WithName(Named handler) {
  return [handler = std::move(handler)](HttpRequest& request, HttpResponderPtr responder,
                                        const PathParams& params) {
    const std::string name(params[0]);
    if (Status valid = ValidateCollectionName(name); !valid.ok())
      return responder->Send(JsonError(valid));
    handler(name, request, std::move(responder), params);
  };
}

void CollectionsApi::AddRoutes(RouteTable& routes) {
  routes.Add("GET", "/v1/collections",
             [this](HttpRequest&, HttpResponderPtr responder, const PathParams&) {
               List(std::move(responder));
             });
  routes.Add("GET", "/v1/collections/{collection}",
             WithName([this](const std::string& name, HttpRequest&, HttpResponderPtr responder,
                             const PathParams&) { Describe(name, std::move(responder)); }));
  routes.Add("DELETE", "/v1/collections/{collection}",
             WithName([this](const std::string& name, HttpRequest&, HttpResponderPtr responder,
                             const PathParams&) {
               Answer(std::move(responder), [this, name] {
                 if (Status status = store_.Drop(name); !status.ok()) return JsonError(status);
                 return Json(fmt::format(R"({{"name":{},"deleted":true}})", JsonQuoted(name)));
               });
             }));
  routes.Add(
      "POST", "/v1/collections/{collection}/items",
      WithName([this](const std::string& name, HttpRequest& request, HttpResponderPtr responder,
                      const PathParams&) { AddItems(name, request, std::move(responder)); }));
  routes.Add(
      "POST", "/v1/collections/{collection}/search",
      WithName([this](const std::string& name, HttpRequest& request, HttpResponderPtr responder,
                      const PathParams&) { Search(name, request, std::move(responder)); }));
  routes.Add("DELETE", "/v1/collections/{collection}/items/{id...}",
             WithName([this](const std::string& name, HttpRequest&, HttpResponderPtr responder,
                             const PathParams& params) {
               Answer(std::move(responder), [this, name, id = std::string(params[1])] {
                 if (Status status = store_.Remove(name, id); !status.ok())
                   return JsonError(status);
                 return Json(fmt::format(R"({{"id":{},"deleted":true}})", JsonQuoted(id)));
               });
             }));
}

void CollectionsApi::Answer(HttpResponderPtr responder, std::function<HttpResponse()> work) {
  if (!pool_.Submit([responder, work] { responder->Send(work()); }))
    responder->Send(JsonError(503, "the server is shutting down"));
}

void CollectionsApi::List(HttpResponderPtr responder) {
  Answer(responder, [this] {
    std::vector<std::string> infos;
    for (const auto& info : store_.List()) infos.push_back(InfoJson(info));
    return Json(fmt::format(R"({{"collections":[{}]}})", fmt::join(infos, ",")));
  });
}

void CollectionsApi::Describe(const std::string& name, HttpResponderPtr responder) {
  Answer(responder, [this, name] {
    auto collection = store_.Get(name);
    if (!collection.ok()) return JsonError(collection.status());
    return Json(InfoJson((*collection)->Info()));
  });
}

void CollectionsApi::AddItems(const std::string& name, const HttpRequest& request,
                              HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  auto existing = store_.Get(name);
  std::optional<EmbeddingSpace> space;
  if (existing.ok()) space = (*existing)->space();
  if (doc->HasMember("space")) {
    if (!(*doc)["space"].IsString())
      return responder->Send(
          JsonError(400, "'space' must be document, text, clip or clip-aligned"));
    auto asked = ParseSpace((*doc)["space"].GetString());
    if (!asked.ok()) return responder->Send(JsonError(asked.status()));
    if (space && *space != *asked) {
      return responder->Send(JsonError(
          400, fmt::format("collection '{}' holds {} vectors ({} dimensions), not {}", name,
                           SpaceName(*space), Dimensions(*space), SpaceName(*asked))));
    }
    space = *asked;
  }
  if (!space) space = EmbeddingSpace::kDocument;
  if (!doc->HasMember("items") || !(*doc)["items"].IsArray() || (*doc)["items"].Empty())
    return responder->Send(JsonError(400, "'items' must be a non-empty array"));
  const auto& values = (*doc)["items"];
  if (values.Size() > kMaxEmbedItems) {
    return responder->Send(
        JsonError(413, fmt::format("at most {} items per request", kMaxEmbedItems)));
  }
  // A request adds all its items or none, and a refusal says so.
  auto refused = [](const Status& status) {
    return JsonError(MakeStatus(status.code(),
                                "{}; nothing was added (a request adds all its "
                                "items or none)",
                                status.message()));
  };
  auto items = std::make_shared<std::vector<Item>>();
  auto vectors = std::make_shared<std::vector<std::vector<float>>>(values.Size());
  std::vector<EmbedItem> contents;
  std::vector<std::size_t> embedded;  // positions of the items whose content is embedded
  for (rapidjson::SizeType i = 0; i < values.Size(); ++i) {
    auto parsed = ParseContent(values[i], files_, true);
    Status status =
        parsed.ok() && parsed->vector ? CheckLength(*parsed->vector, *space) : parsed.status();
    if (!status.ok())
      return responder->Send(refused(status.WithContext(fmt::format("items[{}]", i))));
    if (parsed->vector) {
      (*vectors)[i] = std::move(*parsed->vector);
    } else {
      contents.push_back(std::move(*parsed->content));
      embedded.push_back(i);
    }
    items->push_back(std::move(parsed->item));
  }
  auto store = [this, name, space = *space, items, vectors, responder, refused] {
    Answer(responder, [this, name, space, items, vectors, refused] {
      auto added = store_.Add(name, space, std::move(*items), std::move(*vectors));
      if (!added.ok()) return refused(added.status());
      std::vector<std::string> ids;
      for (const auto& id : added->ids) ids.push_back(JsonQuoted(id));
      return Json(fmt::format(R"({{"collection":{},"ids":[{}],"created":{},"count":{}}})",
                              JsonQuoted(name), fmt::join(ids, ","), added->created, added->count));
    });
  };
  embedder_.EmbedAll(std::move(contents), *space,
                     [store, vectors, embedded = std::move(embedded), responder,
                      refused](Result<std::vector<std::vector<float>>> result) {
                       if (!result.ok()) return responder->Send(refused(result.status()));
                       for (std::size_t i = 0; i < embedded.size(); ++i)
                         (*vectors)[embedded[i]] = std::move((*result)[i]);
                       store();
                     });
}

void CollectionsApi::Search(const std::string& name, const HttpRequest& request,
                            HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  auto collection = store_.Get(name);
  if (!collection.ok()) return responder->Send(JsonError(collection.status()));
  if (!doc->HasMember("query")) return responder->Send(JsonError(400, "'query' is required"));
  auto query = ParseContent((*doc)["query"], files_, false);
  Status status = query.ok() && query->vector ? CheckLength(*query->vector, (*collection)->space())
                                              : query.status();
  if (!status.ok()) return responder->Send(JsonError(status.WithContext("query")));
  std::size_t top_k = 10;
  if (doc->HasMember("top_k")) {
    const auto& value = (*doc)["top_k"];
    if (!value.IsUint() || value.GetUint() < 1 || value.GetUint() > kMaxTopK) {
      return responder->Send(
          JsonError(400, fmt::format("'top_k' must be an integer from 1 to {}", kMaxTopK)));
    }
    top_k = value.GetUint();
  }
  auto search = [this, name, collection = *collection, top_k,
                 responder](std::vector<float> vector) {
    Answer(responder, [name, collection, top_k, vector = std::move(vector)] {
      auto matches = collection->Search(vector, top_k);
      if (!matches.ok()) return JsonError(matches.status());
      std::vector<std::string> results;
      for (const auto& match : *matches) {
        std::string result =
            fmt::format(R"({{"id":{},"score":{})", JsonQuoted(match.item.id), match.score);
        for (auto [key, value] : {std::pair{"text", &match.item.text},
                                  {"media_type", &match.item.media_type},
                                  {"name", &match.item.name}}) {
          if (!value->empty()) result += fmt::format(R"(,"{}":{})", key, JsonQuoted(*value));
        }
        if (!match.item.metadata.empty()) result += ",\"metadata\":" + match.item.metadata;
        results.push_back(result + "}");
      }
      return Json(fmt::format(R"({{"collection":{},"results":[{}]}})", JsonQuoted(name),
                              fmt::join(results, ",")));
    });
  };
  if (query->vector) return search(std::move(*query->vector));
  embedder_.EmbedAll({std::move(*query->content)}, (*collection)->space(),
                     [search, responder](Result<std::vector<std::vector<float>>> result) {
                       if (!result.ok()) return responder->Send(JsonError(result.status()));
                       search(std::move((*result)[0]));
                     });
}

}  // namespace braid
