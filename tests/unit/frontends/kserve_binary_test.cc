// KServe's binary tensor extension: the tensor bytes follow a JSON header of
// any length, so they may start anywhere; the parsed inputs are aligned for
// their element type all the same, and wrapped in place when they already are.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "frontends/kserve/kserve.h"

namespace braid {
namespace {

// A request body whose FP32 input of 1.5, 2.5, 3.5 starts `skew` bytes past
// a 4-byte boundary in memory; the header's length goes into `header`.
std::shared_ptr<std::string> BodyWithSkew(std::size_t skew, std::size_t* header) {
  const std::string json =
      R"({"inputs":[{"name":"x","shape":[3],"datatype":"FP32","parameters":{"binary_data_size":12}}]})";
  auto body = std::make_shared<std::string>();
  body->reserve(json.size() + 16 + 12);
  const auto start = reinterpret_cast<std::uintptr_t>(body->data());
  std::size_t length = json.size();
  while ((start + length) % 4 != skew) ++length;
  *body = json + std::string(length - json.size(), ' ');
  const float values[] = {1.5f, 2.5f, 3.5f};
  body->append(reinterpret_cast<const char*>(values), sizeof(values));
  *header = length;
  return body;
}

TEST(KserveBinaryTest, AnInputAfterAHeaderOfAnyLengthIsAlignedForItsType) {
  for (std::size_t skew = 0; skew < 4; ++skew) {
    std::size_t header = 0;
    auto body = BodyWithSkew(skew, &header);
    auto request = ParseInferRequest(body, header, KserveLimits{});
    ASSERT_TRUE(request.ok()) << request.status().message();
    const Tensor& x = request->inputs.at("x");
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(x.data()) % alignof(float), 0u) << skew;
    float got[3];
    std::memcpy(got, x.data(), sizeof(got));
    EXPECT_EQ(got[0], 1.5f);
    EXPECT_EQ(got[2], 3.5f);
    // Aligned already: no copy, the body's own bytes.
    const bool in_body = x.data() == reinterpret_cast<const std::byte*>(body->data()) + header;
    EXPECT_EQ(in_body, skew == 0) << skew;
  }
}

}  // namespace
}  // namespace braid
