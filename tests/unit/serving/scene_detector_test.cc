#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "serving/live_video.h"

namespace braid {
namespace {

// A white 640×360 slide with one line of black text.
cv::Mat Slide(const std::string& text) {
  cv::Mat slide(360, 640, CV_8UC1, cv::Scalar(255));
  cv::putText(slide, text, cv::Point(30, 200), cv::FONT_HERSHEY_SIMPLEX, 1.6, cv::Scalar(0), 3);
  return slide;
}

// The slide as a camera sees it: every pixel off by up to ±12 gray levels.
cv::Mat Noisy(const cv::Mat& slide, int seed) {
  cv::Mat noise(slide.size(), CV_16SC1);
  cv::RNG rng(seed);
  rng.fill(noise, cv::RNG::UNIFORM, -12, 13);
  cv::Mat noisy;
  slide.convertTo(noisy, CV_16SC1);
  noisy += noise;
  noisy.convertTo(noisy, CV_8UC1);
  return noisy;
}

SceneDetector::Verdict Push(SceneDetector& detector, const cv::Mat& frame) {
  return detector.Push(SceneDetector::Thumbnail(frame), frame.size());
}

TEST(SceneDetectorTest, TheFirstFrameIsAKeyFrame) {
  SceneDetector detector;
  const auto verdict = Push(detector, Slide("Quarterly results"));
  EXPECT_TRUE(verdict.key);
  EXPECT_EQ(verdict.change, 1.0);
}

TEST(SceneDetectorTest, NoiseOnTheSameSlideIsNoNewScene) {
  SceneDetector detector;
  const cv::Mat slide = Slide("Quarterly results");
  ASSERT_TRUE(Push(detector, slide).key);
  for (int seed = 1; seed <= 5; ++seed) {
    const auto verdict = Push(detector, Noisy(slide, seed));
    EXPECT_FALSE(verdict.key) << seed;
    EXPECT_LT(verdict.change, 0.01) << seed;
  }
}

TEST(SceneDetectorTest, NewTextOnTheSameBackgroundIsANewScene) {
  SceneDetector detector;
  ASSERT_TRUE(Push(detector, Slide("Quarterly results")).key);
  const auto verdict = Push(detector, Noisy(Slide("Hiring plan 2027"), 7));
  EXPECT_TRUE(verdict.key);
  EXPECT_GE(verdict.change, 0.02);
  EXPECT_LT(verdict.change, 1.0);
  // The new slide is now the one compared against.
  EXPECT_FALSE(Push(detector, Slide("Hiring plan 2027")).key);
}

TEST(SceneDetectorTest, ACutToAnotherSizeIsANewScene) {
  SceneDetector detector;
  ASSERT_TRUE(Push(detector, Slide("Quarterly results")).key);
  cv::Mat wider;
  cv::resize(Slide("Quarterly results"), wider, cv::Size(1280, 720));
  const auto verdict = Push(detector, wider);
  EXPECT_TRUE(verdict.key);
  EXPECT_EQ(verdict.change, 1.0);
}

TEST(SceneDetectorTest, TheThresholdDecides) {
  SceneDetectorOptions strict;
  strict.threshold = 0.9;
  SceneDetector detector(strict);
  ASSERT_TRUE(Push(detector, Slide("Quarterly results")).key);
  EXPECT_FALSE(Push(detector, Slide("Hiring plan 2027")).key);
  SceneDetectorOptions every;
  every.threshold = 0;
  SceneDetector always(every);
  ASSERT_TRUE(Push(always, Slide("Quarterly results")).key);
  EXPECT_TRUE(Push(always, Slide("Quarterly results")).key);
}

}  // namespace
}  // namespace braid
