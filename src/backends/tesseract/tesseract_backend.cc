#include "backends/tesseract/tesseract_backend.h"

#include <tesseract/baseapi.h>
#include <tesseract/resultiterator.h>

#include <memory>

#include "preprocess/image.h"

namespace braid {
namespace {

constexpr char kDefaultTessdata[] = "/usr/share/tesseract-ocr/5/tessdata";

class TesseractInstance : public ModelInstance {
 public:
  TesseractInstance(std::unique_ptr<tesseract::TessBaseAPI> api, ImageLimits limits)
      : api_(std::move(api)), limits_(limits) {}
  ~TesseractInstance() override { api_->End(); }

  // ModelInstance
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    BRAID_ASSIGN_OR_RETURN(auto images, inputs[0].Strings());
    if (images.size() != 1)
      return InvalidArgument("the OCR model takes one image per request, not {}", images.size());
    auto bytes = std::as_bytes(std::span(images[0].data(), images[0].size()));
    BRAID_ASSIGN_OR_RETURN(cv::Mat gray, DecodeImage(bytes, limits_, true));
    api_->SetImage(gray.data, gray.cols, gray.rows, 1, static_cast<int>(gray.step));
    if (api_->Recognize(nullptr) != 0) return Internal("tesseract could not recognise the image");
    std::unique_ptr<char[]> text(api_->GetUTF8Text());
    std::vector<std::string> words;
    std::vector<std::int32_t> boxes;
    std::vector<float> confidences;
    std::unique_ptr<tesseract::ResultIterator> it(api_->GetIterator());
    if (it) {
      do {
        std::unique_ptr<char[]> word(it->GetUTF8Text(tesseract::RIL_WORD));
        if (!word) continue;
        int left, top, right, bottom;
        it->BoundingBox(tesseract::RIL_WORD, &left, &top, &right, &bottom);
        words.emplace_back(word.get());
        boxes.insert(boxes.end(), {left, top, right, bottom});
        confidences.push_back(it->Confidence(tesseract::RIL_WORD));
      } while (it->Next(tesseract::RIL_WORD));
    }
    api_->Clear();
    const auto n = static_cast<std::int64_t>(words.size());
    BRAID_ASSIGN_OR_RETURN(Tensor text_tensor,
                           Tensor::FromStrings({text ? std::string(text.get()) : ""}, {1}));
    BRAID_ASSIGN_OR_RETURN(Tensor word_tensor, Tensor::FromStrings(words, {n}));
    BRAID_ASSIGN_OR_RETURN(Tensor box_tensor, Tensor::Allocate(DataType::kInt32, {n, 4}));
    std::copy(boxes.begin(), boxes.end(), box_tensor.mutable_span<std::int32_t>().begin());
    BRAID_ASSIGN_OR_RETURN(Tensor confidence_tensor, Tensor::Allocate(DataType::kFp32, {n}));
    std::copy(confidences.begin(), confidences.end(),
              confidence_tensor.mutable_span<float>().begin());
    *outputs = {text_tensor, word_tensor, box_tensor, confidence_tensor};
    return Status::Ok();
  }

 private:
  std::unique_ptr<tesseract::TessBaseAPI> api_;
  ImageLimits limits_;
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

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config, const ImageLimits& server) {
  BRAID_RETURN_IF_ERROR(CheckInterface(config));
  const std::string tessdata = config.Parameter("tessdata_dir", kDefaultTessdata);
  const std::string language = config.Parameter("language", "eng");
  int mode = 0;
  ImageLimits limits;
  try {
    mode = std::stoi(config.Parameter("page_segmentation_mode", "3"));
    limits.max_pixels = std::min<std::int64_t>(
        server.max_pixels, std::stoll(config.Parameter("max_pixels", "40000000")));
  } catch (const std::exception&) {
    return InvalidArgument("{}: parameters.page_segmentation_mode and max_pixels must be integers",
                           config.config_path().string());
  }
  if (mode < 0 || mode >= tesseract::PSM_COUNT) {
    return InvalidArgument(
        "{}: parameters.page_segmentation_mode {} is not a tesseract mode (0–{})",
        config.config_path().string(), mode, tesseract::PSM_COUNT - 1);
  }
  std::vector<ModelInstancePtr> instances;
  for (int i = 0; i < config.InstancesToLoad(); ++i) {
    auto api = std::make_unique<tesseract::TessBaseAPI>();
    if (api->Init(tessdata.c_str(), language.c_str(), tesseract::OEM_LSTM_ONLY) != 0) {
      return NotFound("{}: tesseract cannot load language '{}' from {} (install tesseract-ocr-{})",
                      config.config_path().string(), language, tessdata, language);
    }
    api->SetPageSegMode(static_cast<tesseract::PageSegMode>(mode));
    // Quiet: tesseract would otherwise print its resolution guess per image.
    api->SetVariable("debug_file", "/dev/null");
    api->SetVariable("user_defined_dpi", "300");
    instances.push_back(std::make_unique<TesseractInstance>(std::move(api), limits));
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
