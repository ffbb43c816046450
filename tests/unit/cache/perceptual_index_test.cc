#include "cache/perceptual_index.h"

#include <gtest/gtest.h>

#include "support/pictures.h"

namespace braid {
namespace {

using testing::NearCopy;
using testing::Page;
using testing::Picture;

ImageFingerprint Print(const cv::Mat& rgb) { return *Fingerprint(rgb); }

Hash128 Key(std::int64_t n) { return Hasher().Add(n).Finish(); }

TEST(FingerprintTest, NearCopiesAreTheSamePicture) {
  for (std::uint32_t seed = 1; seed <= 5; ++seed) {
    const auto original = Print(Picture(seed));
    for (const auto& copy :
         {NearCopy(Picture(seed), 50, 0.8, 0.0), NearCopy(Picture(seed), 95, 1.2, 0.0),
          NearCopy(Picture(seed), 70, 1.0, 0.015)}) {
      const Likeness likeness = Compare(original, Print(copy));
      EXPECT_TRUE(likeness.same) << "seed " << seed << ": hamming " << likeness.hamming
                                 << ", correlation " << likeness.correlation << ", colour "
                                 << likeness.colour_distance;
    }
  }
}

TEST(FingerprintTest, DistinctPicturesAndPagesAreNot) {
  std::vector<ImageFingerprint> prints;
  for (std::uint32_t seed = 1; seed <= 20; ++seed) prints.push_back(Print(Picture(seed)));
  for (std::uint32_t seed = 1; seed <= 20; ++seed) prints.push_back(Print(Page(seed)));
  for (std::size_t a = 0; a < prints.size(); ++a) {
    for (std::size_t b = a + 1; b < prints.size(); ++b)
      EXPECT_FALSE(Compare(prints[a], prints[b]).same) << a << " vs " << b;
  }
}

TEST(FingerprintTest, AFlatImageMatchesOnlyItsColour) {
  const auto grey = Print(cv::Mat(100, 100, CV_8UC3, cv::Scalar(128, 128, 128)));
  EXPECT_TRUE(Compare(grey, Print(cv::Mat(50, 80, CV_8UC3, cv::Scalar(130, 127, 128)))).same);
  EXPECT_FALSE(Compare(grey, Print(cv::Mat(100, 100, CV_8UC3, cv::Scalar(30, 30, 200)))).same);
  EXPECT_FALSE(Compare(grey, Print(Picture(1))).same);
  EXPECT_FALSE(Fingerprint(cv::Mat()).ok());
}

TEST(PerceptualIndexTest, ANearCopyGetsTheKeyOfItsOriginal) {
  PerceptualIndex index;
  EXPECT_EQ(index.KeyFor(Key(1), Print(Picture(1))), Key(1));
  EXPECT_EQ(index.KeyFor(Key(2), Print(Picture(2))), Key(2));
  EXPECT_EQ(index.KeyFor(Key(3), Print(NearCopy(Picture(1), 60, 0.9, 0.01))), Key(1));
  EXPECT_EQ(index.KeyFor(Key(4), Print(Page(1))), Key(4));
  EXPECT_EQ(index.KeyFor(Key(5), Print(Page(2))), Key(5));
  EXPECT_EQ(index.Known(Key(3)), Key(1)) << "the copy's own bytes, again";
  EXPECT_EQ(index.Known(Key(6)), std::nullopt);
  const PerceptualStats stats = index.Stats();
  EXPECT_EQ(stats.perceptual, 1u);
  EXPECT_EQ(stats.new_images, 4u);
  EXPECT_EQ(stats.exact, 1u);
  EXPECT_EQ(stats.entries, 5u);
}

TEST(PerceptualIndexTest, ForgetsTheOldestPastItsCapacity) {
  PerceptualIndex index(2);
  index.KeyFor(Key(1), Print(Picture(1)));
  index.KeyFor(Key(2), Print(Picture(2)));
  index.KeyFor(Key(3), Print(Picture(3)));
  EXPECT_EQ(index.Known(Key(1)), std::nullopt);
  EXPECT_EQ(index.Known(Key(3)), Key(3));
  EXPECT_EQ(index.KeyFor(Key(4), Print(NearCopy(Picture(1), 90, 1.0, 0.0))), Key(4))
      << "its original was forgotten";
  EXPECT_EQ(index.Stats().entries, 2u);
}

}  // namespace
}  // namespace braid
