#include "frontends/http/multipart.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/base64.h"

namespace braid {
namespace {

using ::testing::HasSubstr;

using namespace std::string_literals;

TEST(MultipartTest, ParsesFieldsAndFiles) {
  const std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nasr\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a "
      "b.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
      "RIFF\r\n--not-a-boundary\0bin\r\n"
      "--XyZ--\r\n"s;
  auto parts = ParseMultipart("multipart/form-data; boundary=XyZ",
                              std::string_view(body.data(), body.size()));
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].name, "model");
  EXPECT_EQ((*parts)[0].data, "asr");
  EXPECT_EQ((*parts)[1].filename, "a b.wav");
  EXPECT_EQ((*parts)[1].content_type, "audio/wav");
  EXPECT_EQ((*parts)[1].data, std::string_view("RIFF\r\n--not-a-boundary\0bin", 26));
}

TEST(MultipartTest, QuotedBoundaryAndHostileBodies) {
  EXPECT_TRUE(ParseMultipart("multipart/form-data; boundary=\"q\"",
                             "--q\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--q--")
                  .ok());
  EXPECT_THAT(ParseMultipart("application/json", "{}").status().message(),
              HasSubstr("multipart/form-data"));
  EXPECT_THAT(ParseMultipart("multipart/form-data", "").status().message(), HasSubstr("boundary"));
  EXPECT_FALSE(ParseMultipart("multipart/form-data; boundary=b", "no boundary here").ok());
  EXPECT_THAT(ParseMultipart("multipart/form-data; boundary=b",
                             "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nunterminated")
                  .status()
                  .message(),
              HasSubstr("not terminated"));
  EXPECT_FALSE(ParseMultipart("multipart/form-data; boundary=b", "--b\r\nno header end").ok());
  std::string many;
  for (int i = 0; i < 100; ++i)
    many += "--b\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n";
  many += "--b--";
  EXPECT_THAT(ParseMultipart("multipart/form-data; boundary=b", many, 64).status().message(),
              HasSubstr("more than 64"));
}

TEST(Base64Test, RoundTripsAndDataUrls) {
  for (std::string text : {""s, "f"s, "fo"s, "foo"s, "foob"s, "fooba"s, "foobar"s, "\0\xff\x10"s}) {
    auto back = Base64Decode(Base64Encode(text));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_FALSE(Base64Decode("Zm9v!").ok());
  EXPECT_FALSE(Base64Decode("Zg==Zg").ok());
  auto url = ParseDataUrl("data:image/png;base64,aGk=");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->media_type, "image/png");
  EXPECT_EQ(url->data, "hi");
  EXPECT_EQ(ParseDataUrl("data:,plain")->media_type, "text/plain");
  EXPECT_FALSE(ParseDataUrl("http://example/x.png").ok());
  EXPECT_FALSE(ParseDataUrl("data:image/png;base64").ok());
}

}  // namespace
}  // namespace braid
