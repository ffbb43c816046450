#include "backends/tesseract/tesseract_backend.h"

#include <leptonica/allheaders.h>
#include <tesseract/baseapi.h>
#include <tesseract/resultiterator.h>

#include <memory>
#include <mutex>

#include "preprocess/image.h"
#include "preprocess/ocr_image.h"

namespace braid {
namespace {

constexpr char kDefaultTessdata[] = "/usr/share/tesseract-ocr/5/tessdata";

// What one pass of Tesseract read, boxes in the original image's pixels.
struct Reading {
  std::string text;
  std::vector<std::string> words;
  std::vector<std::int32_t> boxes;  // left, top, right, bottom per word
  std::vector<float> confidences;
  // Σ confidence × letters over the words: how much text the pass read and
  // how sure it is of it, to choose between passes.
  double score = 0;
  std::size_t letters = 0;

  // Per letter, so that an empty word (a picture taken for text) counts
  // for nothing.
  double MeanConfidence() const { return letters == 0 ? 0 : score / static_cast<double>(letters); }
};

struct Passes {
  bool prepare = true;  // parameters.preprocess photo (true) or none
  tesseract::PageSegMode first = tesseract::PSM_AUTO;
  tesseract::PageSegMode second = tesseract::PSM_SINGLE_BLOCK;
  double second_below = 60;  // the mean confidence per letter under which the second runs
};

class TesseractInstance : public ModelInstance {
 public:
  TesseractInstance(std::unique_ptr<tesseract::TessBaseAPI> api, ImageLimits limits, Passes passes)
      : api_(std::move(api)), limits_(limits), passes_(passes) {}
  ~TesseractInstance() override { api_->End(); }

  // ModelInstance
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    BRAID_ASSIGN_OR_RETURN(auto images, inputs[0].Strings());
    if (images.size() != 1)
      return InvalidArgument("the OCR model takes one image per request, not {}", images.size());
    auto bytes = std::as_bytes(std::span(images[0].data(), images[0].size()));
    BRAID_ASSIGN_OR_RETURN(cv::Mat gray, DecodeImage(bytes, limits_, true));
    OcrImage page;
    if (passes_.prepare) {
      BRAID_ASSIGN_OR_RETURN(page, PrepareOcrImage(gray));
    } else {
      page.image = gray;
      page.original_size = gray.size();
    }
    BRAID_ASSIGN_OR_RETURN(Reading reading, Recognise(page, passes_.first));
    if (reading.MeanConfidence() < passes_.second_below && passes_.second != passes_.first) {
      BRAID_ASSIGN_OR_RETURN(Reading second, Recognise(page, passes_.second));
      if (second.score > reading.score) reading = std::move(second);
    }
    const auto n = static_cast<std::int64_t>(reading.words.size());
    BRAID_ASSIGN_OR_RETURN(Tensor text_tensor, Tensor::FromStrings({reading.text}, {1}));
    BRAID_ASSIGN_OR_RETURN(Tensor word_tensor, Tensor::FromStrings(reading.words, {n}));
    BRAID_ASSIGN_OR_RETURN(Tensor box_tensor, Tensor::Allocate(DataType::kInt32, {n, 4}));
    std::copy(reading.boxes.begin(), reading.boxes.end(),
              box_tensor.mutable_span<std::int32_t>().begin());
    BRAID_ASSIGN_OR_RETURN(Tensor confidence_tensor, Tensor::Allocate(DataType::kFp32, {n}));
    std::copy(reading.confidences.begin(), reading.confidences.end(),
              confidence_tensor.mutable_span<float>().begin());
    *outputs = {text_tensor, word_tensor, box_tensor, confidence_tensor};
    return Status::Ok();
  }

 private:
  Result<Reading> Recognise(const OcrImage& page, tesseract::PageSegMode mode) {
    api_->SetPageSegMode(mode);
    api_->SetImage(page.image.data, page.image.cols, page.image.rows, 1,
                   static_cast<int>(page.image.step));
    if (api_->Recognize(nullptr) != 0) {
      api_->Clear();
      return Internal("tesseract could not recognise the image");
    }
    Reading reading;
    std::unique_ptr<char[]> text(api_->GetUTF8Text());
    if (text) reading.text = text.get();
    std::unique_ptr<tesseract::ResultIterator> it(api_->GetIterator());
    if (it) {
      do {
        std::unique_ptr<char[]> word(it->GetUTF8Text(tesseract::RIL_WORD));
        if (!word) continue;
        int left, top, right, bottom;
        it->BoundingBox(tesseract::RIL_WORD, &left, &top, &right, &bottom);
        const cv::Rect box = page.BoxInOriginal(cv::Rect(left, top, right - left, bottom - top));
        const float confidence = it->Confidence(tesseract::RIL_WORD);
        reading.words.emplace_back(word.get());
        reading.boxes.insert(reading.boxes.end(),
                             {box.x, box.y, box.x + box.width, box.y + box.height});
        reading.confidences.push_back(confidence);
        reading.letters += reading.words.back().size();
        reading.score += confidence * static_cast<double>(reading.words.back().size());
      } while (it->Next(tesseract::RIL_WORD));
    }
    api_->Clear();
    return reading;
  }

  std::unique_ptr<tesseract::TessBaseAPI> api_;
  ImageLimits limits_;
  Passes passes_;
};

Status CheckInterface(const ModelConfig& config) {
  const auto& in = config.inputs;
  const auto& out = config.outputs;
  bool ok = in.size() == 1 && in[0].datatype == DataType::kBytes && out.size() == 4 &&
            out[0].datatype == DataType::kBytes && out[1].datatype == DataType::kBytes &&
            out[2].datatype == DataType::kInt32 && out[3].datatype == DataType::kFp32 &&
            config.max_batch_size == 0;
  if (ok) return Status::Ok();
  return InvalidArgument(
      "{}: a tesseract model takes max_batch_size 0, one BYTES input (the image) and four outputs: "
      "text BYTES, "
      "words BYTES, boxes INT32, confidences FP32",
      config.config_path().string());
}

// A page segmentation mode from parameters[key].
Result<tesseract::PageSegMode> PageSegmentationMode(const ModelConfig& config,
                                                    const std::string& key,
                                                    const std::string& fallback) {
  int mode = -1;
  try {
    mode = std::stoi(config.Parameter(key, fallback));
  } catch (const std::exception&) {
    // Not a number: reported below with the out-of-range ones.
  }
  if (mode < 0 || mode >= tesseract::PSM_COUNT) {
    return InvalidArgument("{}: parameters.{} '{}' is not a tesseract mode (0–{})",
                           config.config_path().string(), key, config.Parameter(key, fallback),
                           tesseract::PSM_COUNT - 1);
  }
  return static_cast<tesseract::PageSegMode>(mode);
}

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config, const ImageLimits& server) {
  BRAID_RETURN_IF_ERROR(CheckInterface(config));
  // Leptonica prints to stderr whatever it finds odd in the boxes Tesseract
  // hands it on noisy images ("Error in boxClipToRectangle"), per image: in
  // a server's log that is noise. The severity is Leptonica's one global,
  // so this silences it for the whole process, once.
  static std::once_flag quiet_leptonica;
  std::call_once(quiet_leptonica, [] { setMsgSeverity(L_SEVERITY_NONE); });
  const std::string tessdata = config.Parameter("tessdata_dir", kDefaultTessdata);
  const std::string language = config.Parameter("language", "eng");
  Passes passes;
  BRAID_ASSIGN_OR_RETURN(passes.first, PageSegmentationMode(config, "page_segmentation_mode", "3"));
  BRAID_ASSIGN_OR_RETURN(passes.second,
                         PageSegmentationMode(config, "fallback_page_segmentation_mode", "6"));
  const std::string preprocess = config.Parameter("preprocess", "photo");
  if (preprocess != "photo" && preprocess != "none") {
    return InvalidArgument("{}: parameters.preprocess is photo or none, not '{}'",
                           config.config_path().string(), preprocess);
  }
  passes.prepare = preprocess == "photo";
  ImageLimits limits;
  try {
    limits.max_pixels = std::min<std::int64_t>(
        server.max_pixels, std::stoll(config.Parameter("max_pixels", "40000000")));
    passes.second_below = std::stof(config.Parameter("fallback_below_confidence", "60"));
  } catch (const std::exception&) {
    return InvalidArgument(
        "{}: parameters.max_pixels and fallback_below_confidence must be numbers",
        config.config_path().string());
  }
  std::vector<ModelInstancePtr> instances;
  for (int i = 0; i < config.InstancesToLoad(); ++i) {
    auto api = std::make_unique<tesseract::TessBaseAPI>();
    if (api->Init(tessdata.c_str(), language.c_str(), tesseract::OEM_LSTM_ONLY) != 0) {
      return NotFound("{}: tesseract cannot load language '{}' from {} (install tesseract-ocr-{})",
                      config.config_path().string(), language, tessdata, language);
    }
    // Quiet: tesseract would otherwise print its resolution guess per image.
    api->SetVariable("debug_file", "/dev/null");
    api->SetVariable("user_defined_dpi", "300");
    instances.push_back(std::make_unique<TesseractInstance>(std::move(api), limits, passes));
  }
  return instances;
}

}  // namespace

BackendFactory MakeTesseractBackend(ImageLimits limits) {
  return [limits](const ModelConfig& config, const std::filesystem::path&) {
    return Load(config, limits);
  };
}

}  // namespace braid
