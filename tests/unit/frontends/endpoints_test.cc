#include "frontends/http/endpoints.h"

#include <gtest/gtest.h>

namespace braid {
namespace {

TEST(NearestEndpointTest, ATypoGetsTheEndpointItMeant) {
  EXPECT_EQ(NearestEndpoint("/v1/embedding"), "POST /v1/embeddings");
  EXPECT_EQ(NearestEndpoint("/v1/chat/completion"), "POST /v1/chat/completions");
  // Placeholders take the request's own segments.
  EXPECT_EQ(NearestEndpoint("/v2/model/clip-text"), "GET /v2/models/clip-text");
  EXPECT_EQ(NearestEndpoint("/v2/models/clip-text/infers"), "POST /v2/models/clip-text/infer");
  EXPECT_EQ(NearestEndpoint("/v1/workflow/speech-report/run"),
            "POST /v1/workflows/speech-report/run");
  EXPECT_EQ(NearestEndpoint("/v1/collections/docs/serch"), "POST /v1/collections/docs/search");
  // A path that exists, asked with another method, gets the method.
  EXPECT_EQ(NearestEndpoint("/v1/embeddings"), "POST /v1/embeddings");
}

TEST(NearestEndpointTest, NothingNearIsNoSuggestion) {
  EXPECT_EQ(NearestEndpoint("/wp-admin/setup-config.php"), std::nullopt);
  EXPECT_EQ(NearestEndpoint("/something/else/entirely"), std::nullopt);
  EXPECT_EQ(NearestEndpoint(""), std::nullopt);
  EXPECT_EQ(NearestEndpoint("no-slash"), std::nullopt);
  EXPECT_EQ(NearestEndpoint("/" + std::string(600, 'a')), std::nullopt);
}

}  // namespace
}  // namespace braid
