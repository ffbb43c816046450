#include "preprocess/ocr_image.h"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "backends/backends.h"
#include "model/config.h"
#include "support/text_errors.h"

namespace braid {
namespace {

const std::filesystem::path kFixtures = BRAID_TEST_FIXTURES;
// tests/fixtures/generate.sh: DejaVu Sans at 28 pixels, black on white.
constexpr char kSentence[] = "The quick brown fox jumps over the lazy dog";
// Its lower-case letters are 15 pixels high (x-height 0.545 em), the
// capitals and ascenders 21: most of the ink is in the former.
constexpr double kRenderedHeight = 16;

cv::Mat Rendered() {
  cv::Mat gray =
      cv::imread((kFixtures / "images/text_0_DejaVu-Sans_28.png").string(), cv::IMREAD_GRAYSCALE);
  EXPECT_FALSE(gray.empty());
  return gray;
}

cv::Mat Scaled(const cv::Mat& gray, double factor) {
  cv::Mat out;
  cv::resize(gray, out, cv::Size(), factor, factor, factor < 1 ? cv::INTER_AREA : cv::INTER_CUBIC);
  return out;
}

// `gray` turned counter-clockwise by `degrees` on a canvas that holds all
// of it, the corners filled with the page's white.
cv::Mat Rotated(const cv::Mat& gray, double degrees) {
  const cv::Point2f centre(gray.cols / 2.0f, gray.rows / 2.0f);
  cv::Mat rotation = cv::getRotationMatrix2D(centre, degrees, 1.0);
  const cv::Rect bounds = cv::RotatedRect(centre, gray.size(), degrees).boundingRect();
  rotation.at<double>(0, 2) += bounds.width / 2.0 - centre.x;
  rotation.at<double>(1, 2) += bounds.height / 2.0 - centre.y;
  cv::Mat out;
  cv::warpAffine(gray, out, rotation, bounds.size(), cv::INTER_CUBIC, cv::BORDER_CONSTANT,
                 cv::Scalar(255));
  return out;
}

// The bounding box of the pixels darker than mid-grey.
cv::Rect InkBox(const cv::Mat& gray) {
  cv::Mat ink = gray < 128;
  return cv::boundingRect(ink);
}

TEST(OcrImageTest, EstimatesTheTextHeightAtAnyScaleAndPolarity) {
  const cv::Mat gray = Rendered();
  EXPECT_NEAR(EstimateTextHeight(gray), kRenderedHeight, 1.5);
  EXPECT_NEAR(EstimateTextHeight(Scaled(gray, 0.5)), kRenderedHeight / 2, 1.5);
  EXPECT_NEAR(EstimateTextHeight(Scaled(gray, 2)), kRenderedHeight * 2, 2.5);
  EXPECT_NEAR(EstimateTextHeight(255 - gray), kRenderedHeight, 1.5);
}

TEST(OcrImageTest, FindsAKnownSkewWithinADegree) {
  const cv::Mat gray = Rendered();
  EXPECT_NEAR(EstimateSkew(gray), 0, 1);
  for (double degrees : {5.0, -3.0, 7.5}) {
    EXPECT_NEAR(EstimateSkew(Rotated(gray, degrees)), degrees, 1) << degrees;
  }
}

TEST(OcrImageTest, ScalesSmallTextUpAndMapsBoxesBack) {
  const cv::Mat small = Scaled(Rendered(), 0.6);
  auto prepared = PrepareOcrImage(small);
  ASSERT_TRUE(prepared.ok()) << prepared.status().message();
  EXPECT_EQ(prepared->skew, 0);
  EXPECT_NEAR(prepared->scale, OcrImageOptions().text_height / (0.6 * kRenderedHeight), 0.5);
  EXPECT_NEAR(EstimateTextHeight(prepared->image), OcrImageOptions().text_height, 3);
  const cv::Rect back = prepared->BoxInOriginal(InkBox(prepared->image));
  const cv::Rect ink = InkBox(small);
  EXPECT_NEAR(back.x, ink.x, 2);
  EXPECT_NEAR(back.y, ink.y, 2);
  EXPECT_NEAR(back.br().x, ink.br().x, 2);
  EXPECT_NEAR(back.br().y, ink.br().y, 2);
}

TEST(OcrImageTest, DeskewsAndMapsItsCentreBack) {
  const cv::Mat tilted = Rotated(Rendered(), 6);
  auto prepared = PrepareOcrImage(tilted);
  ASSERT_TRUE(prepared.ok()) << prepared.status().message();
  EXPECT_NEAR(prepared->skew, 6, 1);
  EXPECT_NEAR(EstimateSkew(prepared->image), 0, 1);
  const cv::Vec3d centre(prepared->image.cols / 2.0, prepared->image.rows / 2.0, 1);
  EXPECT_NEAR(prepared->to_original.row(0).dot(centre.t()), tilted.cols / 2.0, 1);
  EXPECT_NEAR(prepared->to_original.row(1).dot(centre.t()), tilted.rows / 2.0, 1);
  const cv::Rect whole(0, 0, prepared->image.cols, prepared->image.rows);
  EXPECT_EQ(prepared->BoxInOriginal(whole), cv::Rect(0, 0, tilted.cols, tilted.rows));
}

TEST(OcrImageTest, BoundsTheUpscaleByThePixelCap) {
  cv::Mat page(800, 1000, CV_8U, cv::Scalar(255));
  const cv::Mat text = Scaled(Rendered(), 0.4);
  text.copyTo(page(cv::Rect(100, 100, text.cols, text.rows)));
  OcrImageOptions options;
  options.max_pixels = 2'000'000;
  auto prepared = PrepareOcrImage(page, options);
  ASSERT_TRUE(prepared.ok()) << prepared.status().message();
  EXPECT_GT(prepared->scale, 1);
  EXPECT_LE(static_cast<std::int64_t>(prepared->image.total()), options.max_pixels);
}

TEST(OcrImageTest, OddImagesComeBackWhole) {
  cv::Mat cases[] = {cv::Mat(1, 1, CV_8U, cv::Scalar(0)),
                     cv::Mat(2, 3, CV_8U, cv::Scalar(200)),
                     cv::Mat(400, 500, CV_8U, cv::Scalar(255)),
                     cv::Mat(300, 300, CV_8U, cv::Scalar(0)),
                     cv::Mat(1, 4000, CV_8U),
                     cv::Mat(200, 200, CV_8U)};
  cv::randu(cases[4], 0, 256);
  cv::randu(cases[5], 0, 256);
  for (const cv::Mat& gray : cases) {
    auto prepared = PrepareOcrImage(gray);
    ASSERT_TRUE(prepared.ok()) << gray.size() << ": " << prepared.status().message();
    EXPECT_FALSE(prepared->image.empty());
    EXPECT_EQ(prepared->image.type(), CV_8UC1);
    EXPECT_LE(prepared->image.total(), std::max<std::size_t>(gray.total() * 2, 16'000'000));
    if (EstimateTextHeight(gray) == 0) {
      EXPECT_EQ(prepared->scale, 1);
    }
  }
  EXPECT_EQ(PrepareOcrImage(cases[2])->scale, 1);
  EXPECT_EQ(EstimateTextHeight(cases[2]), 0);
  EXPECT_EQ(EstimateTextHeight(cases[3]), 0);
  EXPECT_FALSE(PrepareOcrImage(cv::Mat()).ok());
  EXPECT_FALSE(PrepareOcrImage(cv::Mat(10, 10, CV_8UC3)).ok());
}

// A page with the render at (100, 150) and ink blotches of a letter's size
// off its lines, the first `blotches` of a fixed dozen.
cv::Mat Blotched(int blotches) {
  cv::Mat page(500, 1000, CV_8U, cv::Scalar(255));
  const cv::Mat text = Rendered();
  text.copyTo(page(cv::Rect(100, 150, text.cols, text.rows)));
  for (int i = 0; i < blotches; ++i) {
    const cv::Point centre(60 + 80 * i, i % 2 ? 60 : 420);
    cv::ellipse(page, centre, cv::Size(9, 7), 30 * i, 0, 360, cv::Scalar(60), cv::FILLED);
  }
  return page;
}

// The ink of `prepared` outside the box (in its own pixels) that holds the
// original's `box`.
int InkOutside(const OcrImage& prepared, const cv::Rect& box) {
  const cv::Matx33d backward(prepared.to_original(0, 0), prepared.to_original(0, 1),
                             prepared.to_original(0, 2), prepared.to_original(1, 0),
                             prepared.to_original(1, 1), prepared.to_original(1, 2), 0, 0, 1);
  const cv::Matx33d forward = backward.inv();
  const cv::Point2d from = {forward(0, 0) * box.x + forward(0, 1) * box.y + forward(0, 2),
                            forward(1, 0) * box.x + forward(1, 1) * box.y + forward(1, 2)};
  const cv::Point2d to = {forward(0, 0) * box.br().x + forward(0, 1) * box.br().y + forward(0, 2),
                          forward(1, 0) * box.br().x + forward(1, 1) * box.br().y + forward(1, 2)};
  cv::Mat ink = prepared.image < 255;
  ink(cv::Rect(cv::Point(static_cast<int>(from.x), static_cast<int>(from.y)),
               cv::Point(static_cast<int>(to.x), static_cast<int>(to.y))))
      .setTo(0);
  return cv::countNonZero(ink);
}

TEST(OcrImageTest, ClearsBlotchesOffTheLinesOfAClutteredPageOnly) {
  const cv::Rect text(90, 140, Rendered().cols + 20, Rendered().rows + 20);
  // A dozen blotches: the page is cluttered, and all of them go.
  auto cluttered = PrepareOcrImage(Blotched(12));
  ASSERT_TRUE(cluttered.ok()) << cluttered.status().message();
  EXPECT_EQ(InkOutside(*cluttered, text), 0);
  // Three could be a lone letter or digit each: they stay.
  auto tidy = PrepareOcrImage(Blotched(3));
  ASSERT_TRUE(tidy.ok()) << tidy.status().message();
  EXPECT_GT(InkOutside(*tidy, text), 0);
}

// What the ocr model, loaded as the server loads it, reads in `gray`: its
// four outputs, or none when this build lacks the tesseract backend.
std::optional<std::vector<Tensor>> ReadWithOcrModel(const cv::Mat& gray) {
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  const BackendFactory* factory = backends.Find("tesseract");
  if (factory == nullptr) return std::nullopt;
  std::vector<Tensor> outputs;
  auto config = LoadModelConfig(std::filesystem::path(BRAID_TEST_MODELS) / "ocr");
  if (!config.ok()) {
    ADD_FAILURE() << config.status().message();
    return outputs;
  }
  config->instance_group.count = 1;
  auto instances = (*factory)(*config, config->directory / "1");
  if (!instances.ok()) {
    ADD_FAILURE() << instances.status().message();
    return outputs;
  }
  std::vector<unsigned char> png;
  EXPECT_TRUE(cv::imencode(".png", gray, png));
  const Status status = instances->front()->Execute(
      std::vector<Tensor>{*Tensor::FromStrings({std::string(png.begin(), png.end())}, {1})},
      &outputs);
  EXPECT_TRUE(status.ok()) << status.message();
  return outputs;
}

std::string TextOf(const std::vector<Tensor>& outputs) {
  return testing::NormaliseRecognised(*outputs[0].Strings().value().begin());
}

// Small (11-pixel), faint (40 grey levels) and blurred: what raw Tesseract
// reads nothing of; through the ocr model's preparation, every word, with
// its box in the image as sent.
TEST(OcrImageTest, TheOcrModelReadsSmallFaintBlurredText) {
  cv::Mat faint;
  Scaled(Rendered(), 0.4).convertTo(faint, CV_8U, 40.0 / 255, 170);
  cv::GaussianBlur(faint, faint, cv::Size(), 0.7);
  const auto read = ReadWithOcrModel(faint);
  if (!read) GTEST_SKIP() << "built without the tesseract backend";
  ASSERT_EQ(read->size(), 4u);
  const auto& outputs = *read;
  EXPECT_EQ(TextOf(outputs), testing::NormaliseRecognised(kSentence));
  const auto words = outputs[1].Strings().value();
  const auto boxes = outputs[2].span<std::int32_t>();
  const auto confidences = outputs[3].span<float>();
  ASSERT_EQ(words.size(), 9u);
  ASSERT_EQ(boxes.size(), 4 * words.size());
  ASSERT_EQ(confidences.size(), words.size());
  const cv::Rect ink = InkBox(Scaled(Rendered(), 0.4));
  for (std::size_t i = 0; i < words.size(); ++i) {
    const cv::Rect box(cv::Point(boxes[4 * i], boxes[4 * i + 1]),
                       cv::Point(boxes[4 * i + 2], boxes[4 * i + 3]));
    EXPECT_GT(box.area(), 0) << words[i];
    EXPECT_EQ(box & (ink + cv::Size(6, 6) - cv::Point(3, 3)), box) << words[i];
    EXPECT_GT(confidences[i], 0) << words[i];
  }
}

// Only a page whose edges show a blur is deconvolved, by about that blur.
TEST(OcrImageTest, DeblursOnlyABlurredPage) {
  auto sharp = PrepareOcrImage(Scaled(Rendered(), 0.7));
  ASSERT_TRUE(sharp.ok());
  EXPECT_EQ(sharp->deblur_sigma, 0);
  cv::Mat blurred;
  cv::GaussianBlur(Scaled(Rendered(), 0.7), blurred, cv::Size(), 2);
  auto prepared = PrepareOcrImage(blurred);
  ASSERT_TRUE(prepared.ok());
  // Sigma 2 in the original is 2 × scale in the prepared image; the estimate
  // from edge slopes reads about 0.8 of it here.
  EXPECT_GT(prepared->deblur_sigma, 2 * prepared->scale * 0.6);
  EXPECT_LT(prepared->deblur_sigma, 2 * prepared->scale * 1.4);
}

// Text at the blurred style's size (x-height 11 pixels) out of focus
// (sigma 2): every word read.
TEST(OcrImageTest, TheOcrModelReadsBlurredText) {
  cv::Mat blurred;
  cv::GaussianBlur(Scaled(Rendered(), 0.7), blurred, cv::Size(), 2);
  const auto read = ReadWithOcrModel(blurred);
  if (!read) GTEST_SKIP() << "built without the tesseract backend";
  ASSERT_EQ(read->size(), 4u);
  EXPECT_EQ(TextOf(*read), testing::NormaliseRecognised(kSentence));
}

}  // namespace
}  // namespace braid
