// bench_ocr: the ocr model on text that looks photographed, beside raw
// Tesseract, in one run. A seeded test set of two-line English texts is
// rendered by ImageMagick (DejaVu fonts) and degraded with OpenCV, one style
// at a time (clean, small, low-contrast, blurred, rotated, JPEG, on a
// gradient, on a texture), in the combinations photographs bring
// (small-faint-gradient: small, faint and slightly blurred on uneven light;
// receipt: small, tilted and JPEG-compressed on paper texture) and all at
// once ("photo"). Each image goes through
// the tesseract backend twice, as the server loads it: with the model's own
// config (braid) and with parameters.preprocess none (raw Tesseract, the
// image as decoded, PSM 3, no second pass). Printed per style: the mean
// character error rate (edit distance over the reference's length, after
// lower-casing, dropping punctuation and collapsing white space, as the
// recognition test does) and the milliseconds per image of each.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "backends/backends.h"
#include "core/compute_budget.h"
#include "model/config.h"
#include "support/text_errors.h"

namespace braid {
namespace {

// How a style degrades a render; ranges are drawn from uniformly per image.
struct Style {
  const char* name;
  int min_points, max_points;         // font size in pixels (ImageMagick at 72 dpi)
  double min_contrast, max_contrast;  // the share of the background's light the ink takes away
  double min_blur, max_blur;          // Gaussian sigma in pixels; 0: none
  double min_angle, max_angle;        // rotation in degrees, either way; 0: none
  int min_quality, max_quality;       // JPEG quality; 0: PNG
  enum Background { kWhite, kPaper, kGradient, kTexture, kGradientOrTexture } background;
  double noise;  // sigma of Gaussian pixel noise in grey levels
};

constexpr Style kStyles[] = {
    {"clean", 20, 32, 0.9, 0.9, 0, 0, 0, 0, 0, 0, Style::kWhite, 0},
    {"small", 9, 12, 0.9, 0.9, 0, 0, 0, 0, 0, 0, Style::kWhite, 0},
    {"low-contrast", 14, 18, 0.12, 0.18, 0, 0, 0, 0, 0, 0, Style::kPaper, 0},
    {"blurred", 14, 18, 0.9, 0.9, 1.6, 2.2, 0, 0, 0, 0, Style::kWhite, 0},
    {"rotated", 14, 18, 0.9, 0.9, 0, 0, 3, 8, 0, 0, Style::kWhite, 0},
    {"jpeg", 11, 14, 0.9, 0.9, 0, 0, 0, 0, 30, 50, Style::kWhite, 0},
    {"gradient", 14, 18, 0.35, 0.5, 0, 0, 0, 0, 0, 0, Style::kGradient, 0},
    {"texture", 14, 18, 0.35, 0.5, 0, 0, 0, 0, 0, 0, Style::kTexture, 0},
    {"small-faint-gradient", 9, 12, 0.25, 0.35, 0.5, 0.8, 0, 0, 0, 0, Style::kGradient, 2},
    {"receipt", 10, 12, 0.5, 0.7, 0, 0, 3, 8, 30, 50, Style::kTexture, 0},
    {"photo", 10, 12, 0.3, 0.45, 0.5, 0.8, 3, 8, 30, 50, Style::kGradientOrTexture, 3},
};

constexpr const char* kFonts[] = {"DejaVu-Sans", "DejaVu-Serif", "DejaVu-Sans-Mono"};

constexpr const char* kWords[] = {
    "the",     "invoice", "total",  "amount",  "please",  "call",    "customer", "service",
    "meeting", "floor",   "second", "number",  "due",     "on",      "march",    "order",
    "receipt", "store",   "price",  "coffee",  "milk",    "bread",   "paid",     "cash",
    "card",    "thank",   "you",    "for",     "your",    "visit",   "open",     "daily",
    "from",    "until",   "street", "station", "train",   "leaves",  "platform", "ticket",
    "valid",   "today",   "only",   "room",    "door",    "keep",    "closed",   "exit",
    "water",   "quality", "report", "page",    "chapter", "section", "date",     "time",
    "with",    "and",     "of",     "to",      "is",      "at",      "by",       "new"};

std::string Sentence(std::mt19937& random, int words) {
  std::string text;
  for (int w = 0; w < words; ++w) {
    if (!text.empty()) text += ' ';
    if (random() % 8 == 0) {
      text += std::to_string(random() % 10000);
    } else {
      text += kWords[random() % std::size(kWords)];
    }
  }
  return text;
}

double Uniform(std::mt19937& random, double low, double high) {
  return std::uniform_real_distribution<double>(low, high)(random);
}

// Each style's own stream of random numbers, so that adding a style
// leaves the others' images as they were (FNV-1a of the name).
unsigned StyleSeed(unsigned seed, std::string_view name) {
  std::uint32_t hash = 2166136261u ^ seed;
  for (char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
  return hash;
}

// `text` (lines separated by '\n') in black on white: the ink coverage,
// 0 (paper) to 1 (ink), as float.
cv::Mat RenderCoverage(const std::string& text, const char* font, int points,
                       const std::filesystem::path& file) {
  const std::string command = fmt::format(
      "convert -background white -fill black -font {} -pointsize {} label:'{}' "
      "-bordercolor white -border {} '{}'",
      font, points, text, 2 * points, file.string());
  if (std::system(command.c_str()) != 0) {
    fmt::print(stderr, "bench_ocr: rendering failed: {}\n", command);
    std::exit(1);
  }
  cv::Mat gray = cv::imread(file.string(), cv::IMREAD_GRAYSCALE);
  cv::Mat coverage;
  gray.convertTo(coverage, CV_32F, -1.0 / 255, 1.0);
  return coverage;
}

// The paper's light per pixel, 0–255, as float.
cv::Mat Background(Style::Background kind, cv::Size size, std::mt19937& random) {
  cv::Mat light(size, CV_32F);
  if (kind == Style::kGradientOrTexture) {
    kind = random() % 2 ? Style::kGradient : Style::kTexture;
  }
  if (kind == Style::kWhite) {
    light.setTo(255);
  } else if (kind == Style::kPaper) {
    light.setTo(Uniform(random, 190, 240));
  } else if (kind == Style::kGradient) {
    // Uneven light across the page: from dim to bright in a random direction.
    const double direction = Uniform(random, 0, 2 * M_PI);
    const double dark = Uniform(random, 50, 90), bright = Uniform(random, 200, 250);
    const double dx = std::cos(direction), dy = std::sin(direction);
    const double reach = std::abs(dx) * size.width + std::abs(dy) * size.height;
    const double origin = std::min(0.0, dx * size.width) + std::min(0.0, dy * size.height);
    for (int y = 0; y < size.height; ++y) {
      auto* row = light.ptr<float>(y);
      for (int x = 0; x < size.width; ++x) {
        const double t = (dx * x + dy * y - origin) / reach;
        row[x] = static_cast<float>(dark + (bright - dark) * t);
      }
    }
  } else {
    // Paper grain and blotches: smoothed noise at two scales, and fibres.
    cv::Mat fine(size, CV_32F), coarse(size, CV_32F);
    cv::RNG rng(random());
    rng.fill(fine, cv::RNG::NORMAL, 0, 1);
    rng.fill(coarse, cv::RNG::NORMAL, 0, 1);
    cv::GaussianBlur(fine, fine, cv::Size(), 1.2);
    cv::GaussianBlur(coarse, coarse, cv::Size(), 12);
    cv::normalize(fine, fine, -1, 1, cv::NORM_MINMAX);
    cv::normalize(coarse, coarse, -1, 1, cv::NORM_MINMAX);
    light = Uniform(random, 170, 215) + 30 * fine + 35 * coarse;
    for (int fibre = 0, fibres = size.area() / 4000; fibre < fibres; ++fibre) {
      const cv::Point from(random() % size.width, random() % size.height);
      const cv::Point to = from + cv::Point(random() % 41 - 20, random() % 41 - 20);
      cv::line(light, from, to, cv::Scalar(Uniform(random, 120, 160)), 1, cv::LINE_AA);
    }
  }
  return light;
}

// A style's image of `text`, encoded (PNG, or JPEG when the style says so).
std::string Degrade(const Style& style, const std::string& text, std::mt19937& random,
                    const std::filesystem::path& scratch) {
  const int points = style.min_points + random() % (style.max_points - style.min_points + 1);
  const char* font = kFonts[random() % std::size(kFonts)];
  cv::Mat coverage = RenderCoverage(text, font, points, scratch / "render.png");
  cv::Mat light = Background(style.background, coverage.size(), random);
  const double contrast = Uniform(random, style.min_contrast, style.max_contrast);
  cv::Mat image = light.mul(1 - contrast * coverage);
  if (style.max_angle > 0) {
    const double angle =
        Uniform(random, style.min_angle, style.max_angle) * (random() % 2 ? 1 : -1);
    const cv::Mat rotation =
        cv::getRotationMatrix2D(cv::Point2f(image.cols / 2.0f, image.rows / 2.0f), angle, 1.0);
    cv::warpAffine(image, image, rotation, image.size(), cv::INTER_CUBIC, cv::BORDER_REFLECT);
  }
  if (style.max_blur > 0) {
    cv::GaussianBlur(image, image, cv::Size(), Uniform(random, style.min_blur, style.max_blur));
  }
  if (style.noise > 0) {
    cv::Mat noise(image.size(), CV_32F);
    cv::RNG(random()).fill(noise, cv::RNG::NORMAL, 0, style.noise);
    image += noise;
  }
  cv::Mat gray;
  image.convertTo(gray, CV_8U);
  std::vector<unsigned char> bytes;
  if (style.max_quality > 0) {
    const int quality = style.min_quality + random() % (style.max_quality - style.min_quality + 1);
    cv::imencode(".jpg", gray, bytes, {cv::IMWRITE_JPEG_QUALITY, quality});
  } else {
    cv::imencode(".png", gray, bytes);
  }
  return std::string(bytes.begin(), bytes.end());
}

double CharacterErrorRate(std::string_view reference, std::string_view read) {
  const std::string a = testing::NormaliseRecognised(reference);
  const std::string b = testing::NormaliseRecognised(read);
  return static_cast<double>(testing::EditDistance(a, b)) / std::max<std::size_t>(1, a.size());
}

struct Reading {
  std::string text;
  double ms = 0;
};

Reading Read(ModelInstance& ocr, const std::string& image) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<Tensor> outputs;
  if (Status s = ocr.Execute(std::vector<Tensor>{*Tensor::FromStrings({image}, {1})}, &outputs);
      !s.ok()) {
    fmt::print(stderr, "bench_ocr: {}\n", s.message());
    std::exit(1);
  }
  const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
  return {std::string(*outputs[0].Strings().value().begin()), took.count()};
}

ModelInstancePtr LoadOne(const BackendFactory& factory, ModelConfig config) {
  config.instance_group.count = 1;
  config.instance_group.priority_instances = 0;
  config.autoscale.enabled = false;
  auto instances = factory(config, config.directory / "1");
  if (!instances.ok()) {
    fmt::print(stderr, "bench_ocr: {}\n", instances.status().message());
    std::exit(1);
  }
  return std::move(instances->front());
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  using namespace braid;
  KeepEnginesSingleThreaded(argv);
  CLI::App app{"bench_ocr: braid's OCR beside raw Tesseract on photographed-looking text"};
  std::string repository_dir = BRAID_DEFAULT_MODEL_REPOSITORY;
  int per_style = 12;
  unsigned seed = 1;
  std::string keep;
  std::vector<std::string> only;
  app.add_option("-m,--model-repository", repository_dir, "Model repository (its ocr model)");
  app.add_option("--per-style", per_style, "Images per style")->capture_default_str();
  app.add_option("--seed", seed, "Seed of the test set")->capture_default_str();
  app.add_option("--styles", only, "Only these styles (default: all)")->delimiter(',');
  app.add_option("--keep", keep, "Also write the images and their texts to this folder");
  CLI11_PARSE(app, argc, argv);

  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  const BackendFactory* factory = backends.Find("tesseract");
  if (factory == nullptr) {
    fmt::print("Skipped: this build has no tesseract backend.\n");
    return 0;
  }
  auto config = LoadModelConfig(std::filesystem::path(repository_dir) / "ocr");
  if (!config.ok()) {
    fmt::print(stderr, "bench_ocr: {}\n", config.status().message());
    return 1;
  }
  ModelConfig raw_config = *config;
  raw_config.parameters["preprocess"] = "none";
  raw_config.parameters["page_segmentation_mode"] = "3";
  raw_config.parameters["fallback_below_confidence"] = "0";
  ModelInstancePtr braid = LoadOne(*factory, *config);
  ModelInstancePtr raw = LoadOne(*factory, raw_config);

  const std::filesystem::path scratch =
      std::filesystem::temp_directory_path() / fmt::format("bench_ocr.{}", getpid());
  std::filesystem::create_directories(scratch);
  if (!keep.empty()) std::filesystem::create_directories(keep);

  fmt::print("### CER per style, {} images each (seed {})\n\n", per_style, seed);
  fmt::print(
      "| style | raw Tesseract CER | braid CER | raw ms/image | braid ms/image | goal | met |\n"
      "|---|---:|---:|---:|---:|---|---|\n");
  for (std::size_t s = 0; s < std::size(kStyles); ++s) {
    const Style& style = kStyles[s];
    if (!only.empty() && std::find(only.begin(), only.end(), style.name) == only.end()) continue;
    std::mt19937 random(StyleSeed(seed, style.name));
    double raw_cer = 0, braid_cer = 0, raw_ms = 0, braid_ms = 0;
    for (int i = 0; i < per_style; ++i) {
      const std::string text =
          Sentence(random, 4 + random() % 3) + "\n" + Sentence(random, 4 + random() % 3);
      const std::string image = Degrade(style, text, random, scratch);
      if (!keep.empty()) {
        const auto stem = std::filesystem::path(keep) / fmt::format("{}_{}", style.name, i);
        std::ofstream(stem.string() + (style.max_quality > 0 ? ".jpg" : ".png")) << image;
        std::ofstream(stem.string() + ".txt") << text << "\n";
      }
      const Reading by_raw = Read(*raw, image), by_braid = Read(*braid, image);
      raw_cer += CharacterErrorRate(text, by_raw.text);
      braid_cer += CharacterErrorRate(text, by_braid.text);
      raw_ms += by_raw.ms;
      braid_ms += by_braid.ms;
    }
    raw_cer /= per_style;
    braid_cer /= per_style;
    std::string goal = "—", met = "—";
    if (std::string_view(style.name) == "clean") {
      goal = "≤ raw";
      met = braid_cer <= raw_cer ? "yes" : "**no**";
    } else if (raw_cer >= 0.8) {
      goal = "≤ 0.15";
      met = braid_cer <= 0.15 ? "yes" : "**no**";
    }
    fmt::print("| {} | {:.3f} | {:.3f} | {:.0f} | {:.0f} | {} | {} |\n", style.name, raw_cer,
               braid_cer, raw_ms / per_style, braid_ms / per_style, goal, met);
  }
  std::filesystem::remove_all(scratch);
  return 0;
}
