#include "frontends/http/route_table.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace braid {
namespace {

// A table whose routes record which one ran and what its placeholders took.
class RouteTableTest : public ::testing::Test {
 protected:
  void Add(std::string_view method, std::string_view path, RouteOptions options = {}) {
    table_.Add(
        method, path,
        [this, name = std::string(method) + " " + std::string(path)](HttpRequest&, HttpResponderPtr,
                                                                     const PathParams& params) {
          ran_ = name;
          for (std::size_t i = 0; i < params.size(); ++i) {
            ran_ += ' ';
            ran_ += params[i];
          }
        },
        options);
  }
  // What ran for METHOD PATH: "METHOD TEMPLATE PARAM...", "405 ALLOWED" or "404".
  std::string Run(std::string_view method, std::string_view path) {
    const auto match = table_.Find(method, path);
    if (match.route == nullptr) return match.allowed.empty() ? "404" : "405 " + match.allowed;
    HttpRequest request;
    ran_.clear();
    (*match.route)(request, nullptr, match.params);
    return ran_;
  }
  RouteTable table_;
  std::string ran_;
};

TEST_F(RouteTableTest, PlaceholdersTakeSegmentsAndLiteralsWin) {
  Add("GET", "/v2/models/{model}");
  Add("GET", "/v2/models/stats");
  Add("POST", "/v2/models/{model}/infer");
  Add("POST", "/v2/models/{model}/versions/{version}/infer");
  EXPECT_EQ(Run("GET", "/v2/models/identity"), "GET /v2/models/{model} identity");
  EXPECT_EQ(Run("GET", "/v2/models/stats"), "GET /v2/models/stats");
  // The literal "stats" leads nowhere further, so the placeholder takes it.
  EXPECT_EQ(Run("POST", "/v2/models/stats/infer"), "POST /v2/models/{model}/infer stats");
  EXPECT_EQ(Run("POST", "/v2/models/m/versions/3/infer"),
            "POST /v2/models/{model}/versions/{version}/infer m 3");
  EXPECT_EQ(Run("GET", "/v2/models/identity/"), "GET /v2/models/{model} identity");
}

TEST_F(RouteTableTest, WhatNoRouteTakesIsA404OrA405WithItsMethods) {
  Add("GET", "/v1/collections/{name}");
  Add("DELETE", "/v1/collections/{name}");
  Add("POST", "/v1/collections/{name}/search");
  EXPECT_EQ(Run("PUT", "/v1/collections/docs"), "405 GET, DELETE, HEAD");
  EXPECT_EQ(Run("GET", "/v1/collections/docs/search"), "405 POST");
  EXPECT_EQ(Run("GET", "/v1/collections/docs/other"), "404");
  EXPECT_EQ(Run("GET", "/v1/collections"), "404");
  EXPECT_EQ(Run("GET", "/v1/collections//search"), "404") << "a placeholder takes no empty segment";
  EXPECT_EQ(Run("GET", "v1/collections/docs"), "404");
  EXPECT_EQ(Run("GET", ""), "404");
}

// HEAD is GET without the body: it takes the GET route unless the path has
// a HEAD route of its own.
TEST_F(RouteTableTest, HeadTakesTheGetRoute) {
  Add("GET", "/v2/models/{model}");
  Add("GET", "/web/{file...}");
  Add("HEAD", "/web/{file...}");
  Add("POST", "/v1/embeddings");
  EXPECT_EQ(Run("HEAD", "/v2/models/identity"), "GET /v2/models/{model} identity");
  EXPECT_EQ(Run("HEAD", "/web/app.js"), "HEAD /web/{file...} app.js");
  EXPECT_EQ(Run("HEAD", "/v1/embeddings"), "405 POST");
}

TEST_F(RouteTableTest, TheRootAndARestPlaceholder) {
  Add("GET", "/");
  Add("GET", "/web/{file...}");
  EXPECT_EQ(Run("GET", "/"), "GET /");
  EXPECT_EQ(Run("GET", "/web/samples/cat.png"), "GET /web/{file...} samples/cat.png");
  EXPECT_EQ(Run("GET", "/web"), "404");
}

TEST_F(RouteTableTest, TheOptionsComeWithTheMatch) {
  Add("POST", "/v2/repository/models/{model}/load", {RouteAccess::kAdmin, true});
  Add("POST", "/v2/models/{model}/infer", {RouteAccess::kKeyed, false});
  EXPECT_EQ(table_.Find("POST", "/v2/repository/models/m/load").options.access,
            RouteAccess::kAdmin);
  EXPECT_EQ(table_.Find("GET", "/v2/repository/models/m/load").options.access, RouteAccess::kAdmin)
      << "a wrong method is answered under the path's access";
  EXPECT_FALSE(table_.Find("POST", "/v2/models/m/infer").options.check_json_depth);
}

TEST_F(RouteTableTest, MalformedTemplatesAndDuplicatesAreRefused) {
  Add("GET", "/v1/models");
  EXPECT_THROW(Add("GET", "/v1/models"), std::logic_error);
  EXPECT_THROW(Add("GET", "v1/models"), std::logic_error);
  EXPECT_THROW(Add("GET", "/v1//models"), std::logic_error);
  EXPECT_THROW(Add("GET", "/v1/{rest...}/more"), std::logic_error);
  EXPECT_THROW(Add("GET", "/{a}/{b}/{c}/{d}/{e}"), std::logic_error);
  EXPECT_EQ(table_.endpoints().size(), 1u);
}

TEST_F(RouteTableTest, ATypoGetsTheEndpointItMeant) {
  for (const char* post : {"/v1/embeddings", "/v1/chat/completions", "/v2/models/{model}/infer",
                           "/v1/workflows/{name}/run", "/v1/collections/{name}/search"})
    Add("POST", post);
  Add("GET", "/v2/models/{model}");
  EXPECT_EQ(table_.Nearest("/v1/embedding"), "POST /v1/embeddings");
  EXPECT_EQ(table_.Nearest("/v1/chat/completion"), "POST /v1/chat/completions");
  EXPECT_EQ(table_.Nearest("/v2/model/clip-text"), "GET /v2/models/clip-text");
  EXPECT_EQ(table_.Nearest("/v2/models/clip-text/infers"), "POST /v2/models/clip-text/infer");
  EXPECT_EQ(table_.Nearest("/v1/workflow/speech-report/run"),
            "POST /v1/workflows/speech-report/run");
  EXPECT_EQ(table_.Nearest("/v1/collections/docs/serch"), "POST /v1/collections/docs/search");
  EXPECT_EQ(table_.NoEndpointMessage("POST", "/v1/embedding"),
            "no endpoint POST /v1/embedding; did you mean POST /v1/embeddings?");
}

TEST_F(RouteTableTest, NothingNearIsNoSuggestion) {
  Add("POST", "/v1/embeddings");
  Add("GET", "/v2/models/{model}");
  EXPECT_EQ(table_.Nearest("/wp-admin/setup-config.php"), std::nullopt);
  EXPECT_EQ(table_.Nearest("/something/else/entirely"), std::nullopt);
  EXPECT_EQ(table_.Nearest(""), std::nullopt);
  EXPECT_EQ(table_.Nearest("no-slash"), std::nullopt);
  EXPECT_EQ(table_.Nearest("/" + std::string(600, 'a')), std::nullopt);
  EXPECT_EQ(table_.NoEndpointMessage("GET", "/nowhere"), "no endpoint GET /nowhere");
}

}  // namespace
}  // namespace braid
