// bench_embeddings: what braid's text embedder (text-embed, trained on
// WordNet at build time) knows, beside the CLIP stand-in (clip-text, random
// weights) and chance, on data held aside from training:
//   - WordNet's held-out synsets (one in ten, never trained on):
//     definition → lemma and lemma → synonym retrieval;
//   - everyday_pairs.tsv, query → document pairs written by hand for this
//     benchmark: each query against every document;
//   - the same documents rendered as images (ImageMagick, DejaVu Sans),
//     read by the ocr model and embedded: text query → document image;
//   - the text space beside the document space (OCR text plus the layout
//     descriptor): the documents in four styles and pictures without text,
//     searched by text and by a near copy of each image;
// and what encoding costs on one thread: texts per second at batch 1 and
// batch 64, and the p50 of a batch-1 call (tokenizer included).
// Models run in process through the repository, as the server loads them.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "align/metrics.h"
#include "align/wordnet.h"
#include "backends/backends.h"
#include "collections/collection.h"
#include "core/compute_budget.h"
#include "core/file_util.h"
#include "model/repository.h"
#include "preprocess/image.h"
#include "preprocess/layout.h"
#include "preprocess/ngram_tokenizer.h"
#include "preprocess/tokenizer.h"

namespace braid::align {
namespace {

// A text model of the repository with its tokenizer.
class TextModel {
 public:
  TextModel(ModelRepository& repository, const std::string& name) : name_(name) {
    auto model = repository.Get(name);
    if (!model.ok()) {
      error_ = model.status().message();
      return;
    }
    model_ = *model;
    auto tokenizer = LoadTokenizer(repository.root() / name / std::to_string(model_->version()) /
                                   "tokenizer.json");
    if (!tokenizer.ok()) {
      error_ = tokenizer.status().message();
      return;
    }
    tokenizer_ = std::move(tokenizer).value();
  }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  // Whether `text` has no word the tokenizer knows (what OCR reads in a
  // picture), as the server decides it.
  bool ReadsNothing(const std::string& text) const {
    auto ids = tokenizer_->Encode(text);
    return ids.ok() && !ids->empty() && (*ids)[0] == kEmptyFeature;
  }

  // Embeddings of `texts`, `batch` at a time, [N, dim].
  Matrix Embed(const std::vector<std::string>& texts, std::int64_t batch = 64) const {
    Matrix out;
    for (std::size_t start = 0; start < texts.size(); start += batch) {
      const std::size_t end = std::min(texts.size(), start + static_cast<std::size_t>(batch));
      std::vector<std::int64_t> ids;
      for (std::size_t t = start; t < end; ++t) {
        auto encoded = tokenizer_->Encode(texts[t]);
        ids.insert(ids.end(), encoded->begin(), encoded->end());
      }
      const auto rows = static_cast<std::int64_t>(end - start);
      Tensor input =
          *Tensor::Allocate(DataType::kInt64, {rows, static_cast<std::int64_t>(ids.size()) / rows});
      std::copy(ids.begin(), ids.end(), input.mutable_span<std::int64_t>().begin());
      std::vector<Tensor> outputs;
      if (Status s = model_->Execute(0, std::vector<Tensor>{input}, &outputs); !s.ok()) {
        fmt::print(stderr, "{}: {}\n", name_, s.message());
        std::exit(1);
      }
      const auto values = outputs[0].span<float>();
      const auto dim = static_cast<Eigen::Index>(values.size() / (end - start));
      if (out.size() == 0) out.resize(static_cast<Eigen::Index>(texts.size()), dim);
      std::copy(values.begin(), values.end(), out.data() + start * dim);
    }
    return out;
  }

 private:
  std::string name_;
  std::string error_;
  ModelPtr model_;
  TokenizerPtr tokenizer_;
};

struct Pairs {
  std::vector<std::string> queries, documents;
};

Pairs ReadPairs(const std::string& path) {
  auto pairs = ReadTextPairs(path);
  if (!pairs.ok()) {
    fmt::print(stderr, "bench_embeddings: {}\n", pairs.status().message());
    std::exit(1);
  }
  Pairs split;
  for (auto& pair : *pairs) {
    split.queries.push_back(std::move(pair.first));
    split.documents.push_back(std::move(pair.second));
  }
  return split;
}

std::string Row(const std::string& what, const RetrievalMetrics& m) {
  return fmt::format("| {} | {:.3f} | {:.3f} | {:.3f} |", what, m.recall_at_1, m.recall_at_10,
                     m.mrr);
}

// How a document is rendered: page and ink colours and a point size.
struct Style {
  const char* page;
  const char* ink;
  int points;
};
constexpr Style kPlain = {"white", "black", 28};
// The document-space figures render document d in kStyles[d % 4].
constexpr Style kStyles[] = {
    kPlain, {"#1e2a5a", "#f0dc28", 28}, {"#f4f4f4", "#1040a0", 40}, {"#fff4e0", "#802010", 22}};

// `text` rendered as a PNG (ImageMagick, DejaVu Sans, 640 pixels wide).
std::string Render(const std::string& text, const Style& style, const std::string& file) {
  std::string quoted;
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  const std::string command = fmt::format(
      "convert -background '{0}' -fill '{1}' -font DejaVu-Sans -pointsize {2} -size 640x "
      "caption:'{3}' -bordercolor '{0}' -border 24 '{4}'",
      style.page, style.ink, style.points, quoted, file);
  if (std::system(command.c_str()) != 0) {
    fmt::print(stderr, "rendering failed: {}\n", command);
    std::exit(1);
  }
  return *ReadFile(file);
}

// What the ocr model reads in each encoded image.
std::vector<std::string> Read(const std::vector<std::string>& images, ModelRepository& repository) {
  auto ocr = repository.Get("ocr");
  if (!ocr.ok()) {
    fmt::print(stderr, "ocr: {}\n", ocr.status().message());
    std::exit(1);
  }
  std::vector<std::string> read;
  for (const auto& image : images) {
    std::vector<Tensor> outputs;
    if (Status s =
            (*ocr)->Execute(0, std::vector<Tensor>{*Tensor::FromStrings({image}, {1})}, &outputs);
        !s.ok()) {
      fmt::print(stderr, "ocr: {}\n", s.message());
      std::exit(1);
    }
    read.push_back(std::string(*outputs[0].Strings().value().begin()));
  }
  return read;
}

std::string EncodeImage(const cv::Mat& rgb, const std::string& extension, int jpeg_quality = 90) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<unsigned char> bytes;
  cv::imencode(extension, bgr, bytes, {cv::IMWRITE_JPEG_QUALITY, jpeg_quality});
  return std::string(bytes.begin(), bytes.end());
}

// Pictures without a word: a seeded gradient between two colours with a
// few coloured shapes on it.
std::vector<std::string> Pictures(int count) {
  std::mt19937 random(7);
  auto colour = [&] { return cv::Scalar(random() % 256, random() % 256, random() % 256); };
  std::vector<std::string> pictures;
  for (int p = 0; p < count; ++p) {
    cv::Mat rgb(360, 480, CV_8UC3);
    const cv::Scalar from = colour(), to = colour();
    const bool vertical = random() % 2;
    for (int i = 0, n = vertical ? rgb.rows : rgb.cols; i < n; ++i) {
      const double t = double(i) / n;
      (vertical ? rgb.row(i) : rgb.col(i)).setTo(from * (1 - t) + to * t);
    }
    for (int shape = 0, shapes = 1 + random() % 3; shape < shapes; ++shape) {
      const cv::Point centre(random() % 480, random() % 360);
      if (random() % 2) {
        cv::circle(rgb, centre, 20 + random() % 80, colour(), cv::FILLED);
      } else {
        cv::rectangle(rgb, centre, centre + cv::Point(30 + random() % 150, 30 + random() % 100),
                      colour(), cv::FILLED);
      }
    }
    pictures.push_back(EncodeImage(rgb, ".png"));
  }
  return pictures;
}

// A near copy: decoded, scaled to 75 % and saved as a JPEG of quality 70.
std::string NearCopy(const std::string& image) {
  cv::Mat bgr =
      cv::imdecode(std::vector<unsigned char>(image.begin(), image.end()), cv::IMREAD_COLOR);
  cv::Mat rgb, smaller;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  cv::resize(rgb, smaller, cv::Size(), 0.75, 0.75, cv::INTER_AREA);
  return EncodeImage(smaller, ".jpg", 70);
}

// Images in the text space (the text-embed vector of what OCR read) and in
// the document space (that, and the layout descriptor, as the server
// composes them).
struct ImageVectors {
  Matrix text, document;
};

ImageVectors EmbedImages(const std::vector<std::string>& images, const TextModel& text_embed,
                         ModelRepository& repository) {
  const auto read = Read(images, repository);
  ImageVectors vectors{text_embed.Embed(read), {}};
  vectors.document.resize(vectors.text.rows(), kTextEmbedDimensions + kLayoutDimensions);
  for (std::size_t i = 0; i < images.size(); ++i) {
    const auto bytes = std::as_bytes(std::span(images[i].data(), images[i].size()));
    const auto layout = *LayoutDescriptor(*DecodeImage(bytes, {}, false, 64));
    const auto row = static_cast<Eigen::Index>(i);
    const auto vector = DocumentVector(
        std::span(vectors.text.row(row).data(), static_cast<std::size_t>(vectors.text.cols())),
        text_embed.ReadsNothing(read[i]), layout);
    std::copy(vector.begin(), vector.end(), vectors.document.row(row).data());
  }
  return vectors;
}

// Text queries in the document space: their vector, then zeros.
Matrix DocumentSpaceTexts(const Matrix& text) {
  Matrix document = Matrix::Zero(text.rows(), kTextEmbedDimensions + kLayoutDimensions);
  document.leftCols(text.cols()) = text;
  return document;
}

}  // namespace
}  // namespace braid::align

int main(int argc, char** argv) {
  using namespace braid;
  using namespace braid::align;
  using Wall = std::chrono::steady_clock;
  KeepEnginesSingleThreaded(argv);
  CLI::App app{"bench_embeddings: text-embed vs the CLIP stand-in on data held aside"};
  std::string repository_dir = BRAID_DEFAULT_MODEL_REPOSITORY;
  std::string pairs_path = BRAID_EVERYDAY_PAIRS;
  std::string wordnet = kDebianWordNet;
  int speed_texts = 4000;
  std::size_t wordnet_sample = 1000;
  bool no_images = false;
  int pictures = 40;
  app.add_option("-m,--model-repository", repository_dir, "Model repository");
  app.add_option("--pairs", pairs_path, "Hand-written query<TAB>document pairs");
  app.add_option("--wordnet", wordnet, "WordNet 3.0 dict folder");
  app.add_option("--speed-texts", speed_texts, "Texts encoded for the speed figures");
  app.add_option("--wordnet-sample", wordnet_sample,
                 "Held-out synsets per WordNet set, spread evenly (0: all; the CLIP stand-in "
                 "encodes about 50 texts/s)")
      ->capture_default_str();
  app.add_flag("--no-images", no_images,
               "Skip the rendered-document and document-space figures (need ImageMagick)");
  app.add_option("--pictures", pictures, "Pictures without text in the document-space gallery")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(repository_dir, backends);
  for (const char* name : {"text-embed", "clip-text", "ocr"}) {
    if (Status s = repository.Load(name); !s.ok()) {
      fmt::print(stderr, "bench_embeddings: {}\n", s.message());
      return 1;
    }
  }
  const TextModel text_embed(repository, "text-embed"), clip(repository, "clip-text");
  for (const auto* model : {&text_embed, &clip}) {
    if (!model->error().empty()) {
      fmt::print(stderr, "bench_embeddings: {}: {}\n", model->name(), model->error());
      return 1;
    }
  }

  fmt::print("### Quality on data held aside from training\n\n");
  fmt::print("| set | model | recall@1 | recall@10 | MRR |\n|---|---|---:|---:|---:|\n");
  auto synsets = ReadWordNet(wordnet);
  if (!synsets.ok()) {
    fmt::print(stderr, "bench_embeddings: {}\n", synsets.status().message());
    return 1;
  }
  HeldOutSets held_out = HeldOutQueries(*synsets);
  auto& [definitions, lemmas, synonyms_a, synonyms_b] = held_out;
  // An even spread of `wordnet_sample` rows, the same for every model.
  auto sample = [&](std::vector<std::string>& a, std::vector<std::string>& b) {
    if (wordnet_sample == 0 || a.size() <= wordnet_sample) return;
    std::vector<std::string> sa, sb;
    for (std::size_t i = 0; i < wordnet_sample; ++i) {
      sa.push_back(a[i * a.size() / wordnet_sample]);
      sb.push_back(b[i * b.size() / wordnet_sample]);
    }
    a.swap(sa);
    b.swap(sb);
  };
  sample(definitions, lemmas);
  sample(synonyms_a, synonyms_b);
  const Pairs everyday = ReadPairs(pairs_path);
  struct Set {
    std::string name;
    const std::vector<std::string>* queries;
    const std::vector<std::string>* gallery;
  };
  const std::vector<Set> sets = {
      {fmt::format("WordNet held out: definition → lemma ({})", definitions.size()), &definitions,
       &lemmas},
      {fmt::format("WordNet held out: lemma → synonym ({})", synonyms_a.size()), &synonyms_a,
       &synonyms_b},
      {fmt::format("everyday pairs: query → document ({})", everyday.queries.size()),
       &everyday.queries, &everyday.documents},
  };
  for (const auto& set : sets) {
    for (const auto* model : {&text_embed, &clip}) {
      std::string what = set.name + " | " + model->name();
      fmt::print("{}\n", Row(what, EvaluateRetrieval(model->Embed(*set.queries),
                                                     model->Embed(*set.gallery))));
    }
    fmt::print("{}\n", Row(set.name + " | chance",
                           ChanceMetrics(static_cast<std::int64_t>(set.queries->size()))));
  }
  if (!no_images) {
    const std::string dir = "/tmp/bench_embeddings_docs";
    std::filesystem::create_directories(dir);
    fmt::print(stderr, "rendering and reading {} documents\n", everyday.documents.size());
    std::vector<std::string> rendered;
    for (std::size_t d = 0; d < everyday.documents.size(); ++d) {
      rendered.push_back(
          Render(everyday.documents[d], kPlain, fmt::format("{}/doc{}.png", dir, d)));
    }
    const auto read = Read(rendered, repository);
    std::size_t exact = 0;
    for (std::size_t d = 0; d < read.size(); ++d) {
      std::string got = read[d];
      while (!got.empty() && (got.back() == '\n' || got.back() == ' ')) got.pop_back();
      exact += got == everyday.documents[d];
    }
    const std::string name =
        fmt::format("everyday pairs: query → rendered document image, by OCR ({}, {} read exactly)",
                    read.size(), exact);
    fmt::print("{}\n",
               Row(name + " | text-embed",
                   EvaluateRetrieval(text_embed.Embed(everyday.queries), text_embed.Embed(read))));
    fmt::print("{}\n",
               Row(name + " | chance", ChanceMetrics(static_cast<std::int64_t>(read.size()))));

    // The document space: the documents in four styles and pictures with
    // nothing to read, found by a text query and by a near copy.
    std::vector<std::string> gallery;
    for (std::size_t d = 0; d < everyday.documents.size(); ++d) {
      gallery.push_back(Render(everyday.documents[d], kStyles[d % std::size(kStyles)],
                               fmt::format("{}/styled{}.png", dir, d)));
    }
    for (auto& picture : Pictures(pictures)) gallery.push_back(std::move(picture));
    std::vector<std::string> copies;
    for (const auto& image : gallery) copies.push_back(NearCopy(image));
    fmt::print(stderr, "reading {} styled documents and pictures and their near copies\n",
               gallery.size());
    const ImageVectors originals = EmbedImages(gallery, text_embed, repository);
    const ImageVectors copied = EmbedImages(copies, text_embed, repository);
    const Matrix queries = text_embed.Embed(everyday.queries);
    fmt::print(
        "\n### Document images: the text space (OCR text only) vs the document space (OCR "
        "text and layout)\n\n"
        "{} documents rendered in 4 styles (page and ink colours, point size) and {} pictures "
        "with nothing to read; a near copy is scaled to 75 % and saved as JPEG quality 70.\n\n",
        everyday.documents.size(), pictures);
    fmt::print("| search | space | recall@1 | recall@10 | MRR |\n|---|---|---:|---:|---:|\n");
    const std::string by_text = fmt::format("text query → styled document ({} queries, {} images)",
                                            queries.rows(), gallery.size());
    fmt::print("{}\n", Row(by_text + " | text", EvaluateRetrieval(queries, originals.text)));
    fmt::print("{}\n", Row(by_text + " | document",
                           EvaluateRetrieval(DocumentSpaceTexts(queries), originals.document)));
    const std::string by_copy = fmt::format("near copy → its original ({})", gallery.size());
    fmt::print("{}\n", Row(by_copy + " | text", EvaluateRetrieval(copied.text, originals.text)));
    fmt::print("{}\n", Row(by_copy + " | document",
                           EvaluateRetrieval(copied.document, originals.document)));
    const auto last = static_cast<Eigen::Index>(everyday.documents.size());
    const auto count = static_cast<Eigen::Index>(pictures);
    const std::string by_picture =
        fmt::format("picture's near copy → its original ({}, among the pictures)", pictures);
    fmt::print("{}\n", Row(by_picture + " | text",
                           EvaluateRetrieval(copied.text.middleRows(last, count),
                                             originals.text.middleRows(last, count))));
    fmt::print("{}\n", Row(by_picture + " | document",
                           EvaluateRetrieval(copied.document.middleRows(last, count),
                                             originals.document.middleRows(last, count))));
    fmt::print("{}\n", Row(by_copy + " | chance",
                           ChanceMetrics(static_cast<std::int64_t>(gallery.size()))));
    std::filesystem::remove_all(dir);
  }

  fmt::print(
      "\n### Encoding cost, in process (each model on its config's threads: text-embed 1, "
      "clip-text the whole budget)\n\n");
  fmt::print("| model | texts/s at batch 1 | texts/s at batch 64 | p50 of a batch-1 call |\n");
  fmt::print("|---|---:|---:|---:|\n");
  std::vector<std::string> texts;
  for (int i = 0; i < speed_texts; ++i)
    texts.push_back(everyday.queries[i % everyday.queries.size()] + " " + std::to_string(i));
  for (const auto* model : {&text_embed, &clip}) {
    const int count = model == &clip ? std::max(1, speed_texts / 10) : speed_texts;
    const std::vector<std::string> some(texts.begin(), texts.begin() + count);
    std::vector<double> calls;
    const auto start = Wall::now();
    for (const auto& text : some) {
      const auto call = Wall::now();
      model->Embed({text}, 1);
      calls.push_back(std::chrono::duration<double, std::milli>(Wall::now() - call).count());
    }
    const double single = count / std::chrono::duration<double>(Wall::now() - start).count();
    const auto batched_start = Wall::now();
    model->Embed(some, 64);
    const double batched =
        count / std::chrono::duration<double>(Wall::now() - batched_start).count();
    std::nth_element(calls.begin(), calls.begin() + calls.size() / 2, calls.end());
    fmt::print("| {} | {:.0f} | {:.0f} | {:.3f} ms |\n", model->name(), single, batched,
               calls[calls.size() / 2]);
  }
  return 0;
}
