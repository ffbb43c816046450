#include <gtest/gtest.h>

#include "frontends/http/http_server.h"

namespace braid {
namespace {

TEST(HttpRequestTest, QueryParametersAreFoundAndDecoded) {
  HttpRequest request;
  request.query = "model=asr&sample_rate=16000&text=a+b%26c&empty=&flag";
  EXPECT_EQ(request.QueryParameter("model"), "asr");
  EXPECT_EQ(request.QueryParameter("sample_rate"), "16000");
  EXPECT_EQ(request.QueryParameter("text"), "a b&c");
  EXPECT_EQ(request.QueryParameter("empty"), "");
  EXPECT_EQ(request.QueryParameter("flag"), "");
  EXPECT_EQ(request.QueryParameter("nosuch"), std::nullopt);
  EXPECT_EQ(request.QueryParameter("mode"), std::nullopt);
}

TEST(HttpRequestTest, AWebSocketUpgradeIsAGetThatAsksForIt) {
  HttpRequest request;
  request.method = "GET";
  request.headers = {{"Connection", "keep-alive, Upgrade"}, {"upgrade", "WebSocket"}};
  EXPECT_TRUE(IsWebSocketUpgrade(request));
  request.method = "POST";
  EXPECT_FALSE(IsWebSocketUpgrade(request));
  request.method = "GET";
  request.headers = {{"Connection", "keep-alive"}, {"Upgrade", "websocket"}};
  EXPECT_FALSE(IsWebSocketUpgrade(request));
  request.headers = {{"Connection", "upgrade"}, {"Upgrade", "h2c"}};
  EXPECT_FALSE(IsWebSocketUpgrade(request));
}

TEST(HttpRequestTest, ABrowserWebSocketOffersItsKeyAsASubprotocol) {
  HttpRequest request;
  request.method = "GET";
  request.headers = {{"Connection", "Upgrade"},
                     {"Upgrade", "websocket"},
                     {"Sec-WebSocket-Protocol", "braid, bearer.sesame42"}};
  EXPECT_EQ(WebSocketBearer(request), "sesame42");
  request.headers.back().second = "braid";
  EXPECT_EQ(WebSocketBearer(request), "");
  // Only a WebSocket handshake carries a key that way.
  request.headers = {{"Sec-WebSocket-Protocol", "bearer.sesame42"}};
  EXPECT_EQ(WebSocketBearer(request), "");
}

}  // namespace
}  // namespace braid
