#include "preprocess/layout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/imgproc.hpp>

namespace braid {
namespace {

constexpr int kLayoutHalf = 16;  // the ink grid's values; the colours follow

// A page of `paper` with a block of `ink` "lines" in the rectangle given as
// fractions of its size.
cv::Mat Page(int width, int height, cv::Scalar paper, cv::Scalar ink, cv::Rect2d block) {
  cv::Mat rgb(height, width, CV_8UC3, paper);
  const int left = static_cast<int>(block.x * width), top = static_cast<int>(block.y * height);
  const int right = static_cast<int>((block.x + block.width) * width);
  const int bottom = static_cast<int>((block.y + block.height) * height);
  for (int y = top; y + 6 <= bottom; y += 14)
    cv::rectangle(rgb, cv::Point(left, y), cv::Point(right, y + 6), ink, cv::FILLED);
  return rgb;
}

float Dot(const std::array<float, kLayoutDimensions>& a,
          const std::array<float, kLayoutDimensions>& b, int begin = 0,
          int end = kLayoutDimensions) {
  float dot = 0;
  for (int i = begin; i < end; ++i) dot += a[i] * b[i];
  return dot;
}

const cv::Scalar kWhite(255, 255, 255), kBlack(0, 0, 0), kNavy(20, 30, 90), kYellow(240, 220, 40);
const cv::Rect2d kTopLeft(0.05, 0.05, 0.4, 0.3), kBottomRight(0.55, 0.6, 0.4, 0.3);

TEST(LayoutTest, HasNormOneAndSurvivesResizing) {
  const cv::Mat page = Page(800, 600, kWhite, kBlack, kTopLeft);
  const auto descriptor = *LayoutDescriptor(page);
  EXPECT_NEAR(Dot(descriptor, descriptor), 1.0f, 1e-5f);
  cv::Mat smaller;
  cv::resize(page, smaller, cv::Size(), 0.55, 0.55, cv::INTER_AREA);
  EXPECT_GT(Dot(descriptor, *LayoutDescriptor(smaller)), 0.97f);
}

TEST(LayoutTest, WhereTheInkLiesAndWhichColoursTellPagesApart) {
  const auto top_left = *LayoutDescriptor(Page(800, 600, kWhite, kBlack, kTopLeft));
  const auto bottom_right = *LayoutDescriptor(Page(800, 600, kWhite, kBlack, kBottomRight));
  const auto dark_mode = *LayoutDescriptor(Page(800, 600, kNavy, kYellow, kTopLeft));
  // The ink grid: the same place agrees, opposite corners disagree.
  EXPECT_GT(Dot(top_left, dark_mode, 0, kLayoutHalf), 0.45f);
  EXPECT_LT(Dot(top_left, bottom_right, 0, kLayoutHalf), 0.0f);
  // The colours: black on white alike wherever the ink is; navy and yellow
  // share nothing with them.
  EXPECT_GT(Dot(top_left, bottom_right, kLayoutHalf, kLayoutDimensions), 0.49f);
  EXPECT_LT(Dot(top_left, dark_mode, kLayoutHalf, kLayoutDimensions), 0.05f);
}

TEST(LayoutTest, ABlankPageIsAllColour) {
  const auto blank = *LayoutDescriptor(cv::Mat(300, 200, CV_8UC3, kNavy));
  EXPECT_NEAR(Dot(blank, blank, 0, kLayoutHalf), 0.0f, 1e-6f);
  EXPECT_NEAR(Dot(blank, blank, kLayoutHalf, kLayoutDimensions), 1.0f, 1e-5f);
}

TEST(LayoutTest, RefusesWhatIsNotRgb) {
  EXPECT_EQ(LayoutDescriptor(cv::Mat(10, 10, CV_8UC1, cv::Scalar(0))).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(LayoutDescriptor(cv::Mat()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace braid
