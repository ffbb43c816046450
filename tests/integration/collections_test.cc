// Collections on a real `braid serve --data-dir DIR`, driven by curl: texts
// and images added, searched, deleted, the retrieve node of the
// image-search workflow, clear errors for bad input, and everything found
// again after a restart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/base64.h"
#include "support/command.h"
#include "support/server_process.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;

struct Reply {
  int code = 0;
  std::string body;
};

Reply Curl(const ServerProcess& server, const std::string& method, const std::string& path,
           const std::string& json = "") {
  testing::TempDir dir;
  std::string args = "-X " + method;
  if (!json.empty()) {
    args += " -H 'Content-Type: application/json' --data-binary @" +
            dir.Write("request.json", json).string();
  }
  auto result = RunCommand("curl -s -S -o " + (dir.path() / "body").string() +
                           " -w '%{http_code}' " + args + " '" + server.url() + path + "'");
  Reply reply;
  reply.code = std::atoi(result.out.c_str());
  std::ifstream body(dir.path() / "body", std::ios::binary);
  reply.body.assign(std::istreambuf_iterator<char>(body), {});
  return reply;
}

rapidjson::Document Parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  EXPECT_FALSE(doc.HasParseError()) << text;
  return doc;
}

std::string ImageUrl(const std::string& fixture) {
  std::ifstream file(std::string(BRAID_TEST_FIXTURES) + "/images/" + fixture, std::ios::binary);
  std::string bytes(std::istreambuf_iterator<char>(file), {});
  EXPECT_FALSE(bytes.empty()) << fixture;
  return "data:image/png;base64," + Base64Encode(bytes);
}

// The ids of a search's results, best first.
std::vector<std::string> Ids(const Reply& reply) {
  std::vector<std::string> ids;
  auto doc = Parse(reply.body);
  if (!doc.IsObject() || !doc.HasMember("results")) return ids;
  for (const auto& result : doc["results"].GetArray()) ids.push_back(result["id"].GetString());
  return ids;
}

// [1, 0, 0, ...]: a vector the client brings.
std::string UnitVector(int dimensions) {
  std::string vector = "[1";
  for (int i = 1; i < dimensions; ++i) vector += ",0";
  return vector + "]";
}

ServerProcess Start(const testing::TempDir& data) {
  return ServerProcess({"--data-dir", data.path().string()});
}

TEST(CollectionsTest, AddSearchDeleteAndFindAgainAfterARestart) {
  testing::TempDir data;
  const std::string first = ImageUrl("text_0_DejaVu-Sans_40.png");
  const std::string second = ImageUrl("text_1_DejaVu-Serif_40.png");
  {
    ServerProcess server = Start(data);
    ASSERT_TRUE(server.ready()) << server.ready_line();
    EXPECT_EQ(Curl(server, "GET", "/v1/collections").body, R"({"collections":[]})");

    auto added = Curl(server, "POST", "/v1/collections/docs/items", R"({"items":[
        {"id":"fox","text":"The quick brown fox","metadata":{"page":1}},
        {"id":"invoice","text":"Invoice number 4821 is due"},
        {"text":"Meeting moved to the second floor"}]})");
    ASSERT_EQ(added.code, 200) << added.body;
    auto doc = Parse(added.body);
    EXPECT_EQ(doc["created"].GetInt(), 3);
    EXPECT_EQ(doc["count"].GetInt(), 3);
    EXPECT_STREQ(doc["ids"][0].GetString(), "fox");
    EXPECT_EQ(std::string(doc["ids"][2].GetString()).size(), 16u) << "a generated id";

    auto found = Curl(server, "POST", "/v1/collections/docs/search",
                      R"({"query":{"text":"Invoice number 4821 is due"},"top_k":2})");
    ASSERT_EQ(found.code, 200) << found.body;
    doc = Parse(found.body);
    ASSERT_EQ(doc["results"].Size(), 2u);
    EXPECT_STREQ(doc["results"][0]["id"].GetString(), "invoice");
    EXPECT_NEAR(doc["results"][0]["score"].GetDouble(), 1.0, 1e-4) << "the same text";
    EXPECT_STREQ(doc["results"][0]["text"].GetString(), "Invoice number 4821 is due");
    auto fox = Curl(server, "POST", "/v1/collections/docs/search",
                    R"({"query":"The quick brown fox","top_k":1})");
    EXPECT_THAT(fox.body, HasSubstr(R"("metadata":{"page":1})"));

    // Images, in the aligned space, searched by image and by text.
    added = Curl(server, "POST", "/v1/collections/pics/items",
                 R"({"space":"clip-aligned","items":[{"id":"first","image":")" + first +
                     R"("},{"id":"second","image":")" + second + R"(","name":"b.png"}]})");
    ASSERT_EQ(added.code, 200) << added.body;
    found = Curl(server, "POST", "/v1/collections/pics/search",
                 R"({"query":{"image":")" + second + R"("}})");
    ASSERT_EQ(found.code, 200) << found.body;
    EXPECT_EQ(Ids(found), (std::vector<std::string>{"second", "first"}));
    EXPECT_THAT(found.body, HasSubstr(R"("media_type":"image/png","name":"b.png")"));
    found = Curl(server, "POST", "/v1/collections/pics/search", R"({"query":"a text"})");
    EXPECT_EQ(Ids(found).size(), 2u) << found.body;
    auto info = Curl(server, "GET", "/v1/collections/pics");
    EXPECT_EQ(
        info.body,
        R"({"name":"pics","space":"clip-aligned","dimensions":128,"count":2,"index":"flat"})");

    // The retrieve node: image-search looks in `gallery` (the default
    // document space: the image is embedded by what OCR reads in it and its
    // layout).
    ASSERT_EQ(Curl(server, "POST", "/v1/collections/gallery/items",
                   R"({"items":[{"id":"g1","image":")" + first +
                       R"("},{"id":"g2","text":"a caption","vector":)" + UnitVector(128) + "}]}")
                  .code,
              200);
    auto run = Curl(server, "POST", "/v1/workflows/image-search/run",
                    R"({"inputs":{"image":")" + first + R"("},"response_mode":"blocking"})");
    ASSERT_EQ(run.code, 200) << run.body;
    doc = Parse(run.body);
    EXPECT_STREQ(doc["data"]["status"].GetString(), "succeeded") << run.body;
    EXPECT_THAT(run.body, HasSubstr("Closest in gallery: g1 g2"));

    // Deleting an item.
    EXPECT_EQ(Curl(server, "DELETE", "/v1/collections/docs/items/invoice").code, 200);
    EXPECT_EQ(Curl(server, "DELETE", "/v1/collections/docs/items/invoice").code, 404);
    found = Curl(server, "POST", "/v1/collections/docs/search",
                 R"({"query":"Invoice number 4821 is due"})");
    EXPECT_EQ(Ids(found).size(), 2u);
    EXPECT_THAT(found.body, ::testing::Not(HasSubstr("invoice")));
    EXPECT_EQ(server.Stop(), 0);
  }
  ServerProcess server = Start(data);
  ASSERT_TRUE(server.ready()) << server.ready_line();
  auto list = Parse(Curl(server, "GET", "/v1/collections").body);
  ASSERT_EQ(list["collections"].Size(), 3u);
  EXPECT_STREQ(list["collections"][0]["name"].GetString(), "docs");
  EXPECT_EQ(list["collections"][0]["count"].GetInt(), 2);
  auto fox = Curl(server, "POST", "/v1/collections/docs/search",
                  R"({"query":"The quick brown fox","top_k":1})");
  EXPECT_EQ(Ids(fox), (std::vector<std::string>{"fox"}));
  EXPECT_THAT(fox.body, HasSubstr(R"("metadata":{"page":1})"));
  auto found = Curl(server, "POST", "/v1/collections/pics/search",
                    R"({"query":{"image":")" + first + R"("}})");
  EXPECT_EQ(Ids(found), (std::vector<std::string>{"first", "second"}));

  EXPECT_EQ(Curl(server, "DELETE", "/v1/collections/pics").code, 200);
  EXPECT_EQ(Curl(server, "GET", "/v1/collections/pics").code, 404);
  EXPECT_FALSE(std::filesystem::exists(data.path() / "collections/pics"));
}

// A data URL of `rgb` encoded as `extension` (".png", ".jpg").
std::string EncodedUrl(const cv::Mat& rgb, const std::string& extension) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<unsigned char> bytes;
  EXPECT_TRUE(cv::imencode(extension, bgr, bytes));
  const std::string type = extension == ".png" ? "png" : "jpeg";
  return "data:image/" + type + ";base64," +
         Base64Encode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// Two pictures without a word in them: a sunset (orange over dark) and a
// sea (blue under a pale sky).
cv::Mat Picture(bool sunset) {
  cv::Mat rgb(360, 480, CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y) {
    const bool upper = y < rgb.rows / 2;
    const cv::Vec3b colour = sunset ? (upper ? cv::Vec3b(250, 140, 40) : cv::Vec3b(40, 20, 30))
                                    : (upper ? cv::Vec3b(200, 225, 250) : cv::Vec3b(20, 60, 160));
    rgb.row(y).setTo(cv::Scalar(colour[0], colour[1], colour[2]));
  }
  return rgb;
}

TEST(CollectionsTest, TheDocumentSpaceTellsImagesApartByTheirLook) {
  testing::TempDir data;
  ServerProcess server = Start(data);
  ASSERT_TRUE(server.ready()) << server.ready_line();
  auto added =
      Curl(server, "POST", "/v1/collections/looks/items",
           R"({"items":[{"id":"sunset","image":")" + EncodedUrl(Picture(true), ".png") +
               R"("},{"id":"sea","image":")" + EncodedUrl(Picture(false), ".png") +
               R"("},{"id":"page","image":")" + ImageUrl("text_0_DejaVu-Sans_40.png") + R"("}]})");
  ASSERT_EQ(added.code, 200) << added.body;
  EXPECT_THAT(Curl(server, "GET", "/v1/collections/looks").body,
              HasSubstr(R"("space":"document","dimensions":128)"));

  // Smaller JPEG copies find their originals by layout and colour alone
  // (OCR reads nothing in either picture).
  for (const bool sunset : {true, false}) {
    cv::Mat copy;
    cv::resize(Picture(sunset), copy, cv::Size(), 0.6, 0.6, cv::INTER_AREA);
    auto found = Curl(server, "POST", "/v1/collections/looks/search",
                      R"({"query":{"image":")" + EncodedUrl(copy, ".jpg") + R"("},"top_k":1})");
    EXPECT_EQ(Ids(found), (std::vector<std::string>{sunset ? "sunset" : "sea"})) << found.body;
  }

  // A text query is matched on what the page says; a picture with nothing
  // to read scores zero.
  auto found =
      Curl(server, "POST", "/v1/collections/looks/search", R"({"query":"a fox jumps over a dog"})");
  ASSERT_EQ(found.code, 200) << found.body;
  auto doc = Parse(found.body);
  ASSERT_EQ(doc["results"].Size(), 3u) << found.body;
  EXPECT_STREQ(doc["results"][0]["id"].GetString(), "page") << found.body;
  EXPECT_GT(doc["results"][0]["score"].GetDouble(), 0.3) << found.body;
  EXPECT_NEAR(doc["results"][1]["score"].GetDouble(), 0.0, 1e-6) << found.body;
  EXPECT_NEAR(doc["results"][2]["score"].GetDouble(), 0.0, 1e-6) << found.body;
  EXPECT_EQ(server.Stop(), 0);
}

TEST(CollectionsTest, BadInputGetsClearErrors) {
  testing::TempDir data;
  ServerProcess server = Start(data);
  ASSERT_TRUE(server.ready()) << server.ready_line();
  ASSERT_EQ(
      Curl(server, "POST", "/v1/collections/docs/items", R"({"items":[{"text":"hello"}]})").code,
      200);
  struct Case {
    std::string method, path, body;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"POST", "/v1/collections/nothing/search", R"({"query":"x"})", 404,
       "no collection 'nothing'"},
      {"GET", "/v1/collections/nothing", "", 404, "no collection 'nothing'"},
      {"DELETE", "/v1/collections/nothing", "", 404, "no collection 'nothing'"},
      {"DELETE", "/v1/collections/docs/items/missing", "", 404, "has no item 'missing'"},
      {"POST", "/v1/collections/docs/items", R"({"items":[{"vector":[1,2,3]}]})", 400,
       "items[0]: 'vector' has 3 values; document vectors have 128"},
      {"POST", "/v1/collections/docs/search", R"({"query":{"vector":[1,0]}})", 400,
       "query: 'vector' has 2 values; document vectors have 128"},
      {"POST", "/v1/collections/docs/items", R"({"space":"clip-aligned","items":[{"text":"a"}]})",
       400, "collection 'docs' holds document vectors (128 dimensions), not clip-aligned"},
      {"POST", "/v1/collections/docs/items", R"({"space":"clip-huge","items":[{"text":"a"}]})", 400,
       "unknown space 'clip-huge'"},
      {"POST", "/v1/collections/docs/items", R"({"items":[]})", 400,
       "'items' must be a non-empty array"},
      {"POST", "/v1/collections/docs/items", R"({"items":[{"txt":"a"}]})", 400,
       "items[0]: unknown field 'txt'"},
      {"POST", "/v1/collections/docs/items", R"({"items":[{"text":"a","image":"AAAA"}]})", 400,
       "give 'text' or 'image', not both"},
      {"POST", "/v1/collections/docs/items",
       R"({"items":[{"image":"data:image/png;base64,AAAA"}]})", 400, ""},
      {"POST", "/v1/collections/docs/items", R"({"items":[{"image":{"upload_file_id":"nope"}}]})",
       404, ""},
      {"POST", "/v1/collections/docs/search", R"({"query":"x","top_k":0})", 400,
       "'top_k' must be an integer from 1 to 1000"},
      {"POST", "/v1/collections/docs/search", R"({"top_k":3})", 400, "'query' is required"},
      {"POST", "/v1/collections/docs/search", "[1]", 400, "the body must be a JSON object"},
      {"POST", "/v1/collections/bad%20name/items", R"({"items":[{"text":"a"}]})", 400,
       "a collection name is 1-64 characters"},
      {"GET", "/v1/collections/docs/search", "", 405, "takes POST"},
      {"GET", "/v1/collections/docs/other", "", 404, "no endpoint"},
      // Issue 30: stored fields are bounded (a 20 MB name was written to disk).
      {"POST", "/v1/collections/docs/items",
       R"({"items":[{"text":"a","id":")" + std::string(300, 'i') + R"("}]})", 400,
       "an item id must be 1-256 bytes"},
      {"POST", "/v1/collections/docs/items",
       R"({"items":[{"text":"a","name":")" + std::string(2000, 'n') + R"("}]})", 413,
       "'name' is longer than 1024 bytes"},
  };
  for (const auto& c : cases) {
    auto reply = Curl(server, c.method, c.path, c.body);
    EXPECT_EQ(reply.code, c.code) << c.method << " " << c.path << " " << c.body << ": "
                                  << reply.body;
    EXPECT_THAT(reply.body, HasSubstr(R"({"error":)")) << c.path;
    EXPECT_THAT(reply.body, HasSubstr(c.message)) << c.path << " " << c.body;
  }
  // A batch with one bad item adds none, and says so.
  auto mixed =
      Curl(server, "POST", "/v1/collections/docs/items",
           R"({"items":[{"id":"ok","text":"fine"},{"image":"data:image/png;base64,@@"}]})");
  EXPECT_EQ(mixed.code, 400);
  EXPECT_THAT(mixed.body, HasSubstr("items[1]: invalid base64 data; nothing was added (a request "
                                    "adds all its items or none)"));
  EXPECT_THAT(Curl(server, "GET", "/v1/collections/docs", "").body, HasSubstr(R"("count":1)"));
  std::string many = R"({"items":[)";
  for (int i = 0; i < 257; ++i) many += std::string(i ? "," : "") + R"({"text":"a"})";
  EXPECT_EQ(Curl(server, "POST", "/v1/collections/docs/items", many + "]}").code, 413);
  // Issue 30: a rejected add to a new collection creates no collection.
  EXPECT_EQ(
      Curl(server, "POST", "/v1/collections/fresh/items", R"({"items":[{"text":"a","id":"a/b"}]})")
          .code,
      400);
  EXPECT_EQ(Curl(server, "GET", "/v1/collections/fresh", "").code, 404);
}

}  // namespace
}  // namespace braid
