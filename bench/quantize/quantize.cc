// bench_quantize: what `braid quantize` buys on this CPU, measured side by
// side in one run for the clip-text and clip-image stand-ins of the default
// repository (random weights, real CLIP shapes):
//   - throughput of FP32, INT8 dynamic and INT8 static (QDQ, min-max and
//     percentile calibration) at batch 1, 8 and 32, the four models taking
//     turns on the same batch (median of --rounds), and the ratio to FP32;
//   - the drift of each quantized model's embeddings from FP32's (cosine
//     similarity per item, mean and worst) on inputs it was not calibrated on;
//   - retrieval: items and queries embedded by each model, searched exactly
//     (cosine, top 10). Recall@10 of each query's own item (its paired
//     document, the picture it is a near copy of) for every model, and the
//     quantized models' difference to FP32's; and, stricter, recall@10
//     against FP32's own top 10, so FP32 scores 1 and a quantized encoder
//     loses whatever it reorders. The texts are
//     bench/embeddings/everyday_pairs.tsv (queries → documents); the images
//     seeded pictures, queried by near copies (JPEG 70, 90 %, 5 % cropped).
// Calibration takes 32 items; queries are never calibrated on.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "align/wordnet.h"
#include "preprocess/image.h"
#include "preprocess/tokenizer.h"
#include "quantize/tool.h"
#include "scheduler/model_scheduler.h"
#include "support/exit_on_error.h"
#include "support/pictures.h"

namespace braid::quantize {
namespace {

using Clock = std::chrono::steady_clock;

struct Variant {
  std::string name;
  std::string bytes;
  std::unique_ptr<OnnxModelRunner> runner;
};

using testing::Check;
using testing::Fail;

std::vector<Sample> TextSamples(const std::vector<std::string>& texts, const Tokenizer& tokenizer,
                                std::int64_t length) {
  std::vector<Sample> samples;
  for (const auto& text : texts) samples.push_back(Check(TextSample(tokenizer, text, length)));
  return samples;
}

std::vector<Sample> ImageSamples(const std::vector<cv::Mat>& images, int size) {
  std::vector<Sample> samples;
  for (const auto& rgb : images) {
    Tensor tensor = Check(Tensor::Allocate(DataType::kFp32, {1, 3, size, size}));
    if (auto status = ClipPreprocess(rgb, tensor.mutable_span<float>().data(), size);
        !status.ok()) {
      Fail(status);
    }
    samples.push_back({std::move(tensor)});
  }
  return samples;
}

// Unit-norm embeddings of `samples` (the first output), one row each.
std::vector<std::vector<float>> Embed(OnnxModelRunner& runner, const std::vector<Sample>& samples) {
  std::vector<std::vector<float>> rows;
  for (const auto& sample : samples) {
    auto outputs = Check(runner.Run(sample));
    auto values = outputs[0].span<float>();
    std::vector<float> row(values.begin(), values.end());
    double norm = 0;
    for (float v : row) norm += double(v) * v;
    for (float& v : row) v = static_cast<float>(v / std::sqrt(std::max(norm, 1e-30)));
    rows.push_back(std::move(row));
  }
  return rows;
}

// The ten items nearest `query`, and how much closer the 10th is than the 11th.
std::pair<std::vector<std::size_t>, float> TopTen(const std::vector<float>& query,
                                                  const std::vector<std::vector<float>>& items) {
  std::vector<std::pair<float, std::size_t>> scored;
  for (std::size_t i = 0; i < items.size(); ++i) {
    scored.push_back({std::inner_product(query.begin(), query.end(), items[i].begin(), 0.f), i});
  }
  const std::size_t k = std::min<std::size_t>(11, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + k, scored.end(), std::greater<>());
  std::vector<std::size_t> top;
  for (std::size_t i = 0; i < std::min<std::size_t>(10, k); ++i) top.push_back(scored[i].second);
  return {top, k == 11 ? scored[9].first - scored[10].first : 0.f};
}

// 0, 1, …, n − 1: query q's item is item q.
std::vector<std::size_t> Identity(std::size_t n) {
  std::vector<std::size_t> indices(n);
  std::iota(indices.begin(), indices.end(), std::size_t{0});
  return indices;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// `answers[q]`: the index in `items` of the item query q should find.
void Measure(const std::string& title, const std::filesystem::path& file,
             const std::vector<Sample>& items, const std::vector<Sample>& queries,
             const std::vector<std::size_t>& answers, int rounds) {
  const auto model = Check(ReadModel(file));
  const std::vector<Sample> calibration(items.begin(),
                                        items.begin() + std::min<std::size_t>(32, items.size()));
  std::vector<Variant> variants;
  variants.push_back({"fp32", Check(SerializeModel(model)), nullptr});
  const bool vnni = CpuHasVnni();
  const Options options{.reduce_range = !vnni};
  variants.push_back({"int8 dynamic",
                      Check(SerializeModel(Check(QuantizeDynamic(model, options)).model)),
                      nullptr});
  for (auto [method, name] : {std::pair{RangeMethod::kMinMax, "int8 static, min-max"},
                              std::pair{RangeMethod::kPercentile, "int8 static, percentile"}}) {
    const auto ranges = Check(Calibrate(model, calibration, method, 99.99));
    variants.push_back({name,
                        Check(SerializeModel(Check(QuantizeStatic(model, ranges, options)).model)),
                        nullptr});
  }
  for (auto& variant : variants) variant.runner = Check(OpenOnnxModel(variant.bytes));

  fmt::print("### {}\n\n", title);
  fmt::print("Weights on {} bits (this CPU {} VNNI).\n\n", vnni ? 8 : 7, vnni ? "has" : "lacks");
  fmt::print(
      "| batch | model | ms per batch (median) | items/s | × fp32 |\n|---|---|---:|---:|---:|\n");
  std::vector<double> best(variants.size(), 0);
  for (int batch : {1, 8, 32}) {
    std::vector<const Tensor*> parts;
    for (int k = 0; k < batch; ++k) parts.push_back(&items[k % items.size()][0]);
    const std::vector<Tensor> inputs = {Check(ConcatenateBatch(parts))};
    std::vector<std::vector<double>> times(variants.size());
    for (auto& variant : variants) Check(variant.runner->Run(inputs));  // warm
    for (int round = 0; round < rounds; ++round) {
      for (std::size_t v = 0; v < variants.size(); ++v) {
        const auto start = Clock::now();
        Check(variants[v].runner->Run(inputs));
        times[v].push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
    }
    const double reference = Median(times[0]);
    for (std::size_t v = 0; v < variants.size(); ++v) {
      const double ms = Median(times[v]);
      best[v] = std::max(best[v], batch * 1000 / ms);
      fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.2f} |\n", batch, variants[v].name, ms,
                 batch * 1000 / ms, reference / ms);
    }
  }
  fmt::print("\nAt each model's best batch: ");
  for (std::size_t v = 1; v < variants.size(); ++v) {
    fmt::print("{} {:.2f}×{}", variants[v].name, best[v] / best[0],
               v + 1 < variants.size() ? ", " : " the throughput of fp32.\n\n");
  }

  const auto reference_items = Embed(*variants[0].runner, items);
  const auto reference_queries = Embed(*variants[0].runner, queries);
  fmt::print(
      "| model | cosine to fp32, mean | worst | recall@10 of the query's own item | recall@10 vs "
      "fp32's top 10 |\n"
      "|---|---:|---:|---:|---:|\n");
  std::vector<double> gaps, own_recall;
  for (std::size_t v = 0; v < variants.size(); ++v) {
    const auto embedded_items = v == 0 ? reference_items : Embed(*variants[v].runner, items);
    const auto embedded_queries = v == 0 ? reference_queries : Embed(*variants[v].runner, queries);
    double sum = 0, worst = 1;
    std::size_t count = 0;
    for (std::size_t i = calibration.size(); i < items.size(); ++i, ++count) {
      const double cosine = std::inner_product(embedded_items[i].begin(), embedded_items[i].end(),
                                               reference_items[i].begin(), 0.0);
      sum += cosine;
      worst = std::min(worst, cosine);
    }
    for (std::size_t q = 0; q < queries.size(); ++q, ++count) {
      const double cosine =
          std::inner_product(embedded_queries[q].begin(), embedded_queries[q].end(),
                             reference_queries[q].begin(), 0.0);
      sum += cosine;
      worst = std::min(worst, cosine);
    }
    std::size_t found = 0, wanted = 0, own = 0;
    for (std::size_t q = 0; q < queries.size(); ++q) {
      const auto [truth, gap] = TopTen(reference_queries[q], reference_items);
      const auto top = TopTen(embedded_queries[q], embedded_items).first;
      for (auto id : top) found += std::count(truth.begin(), truth.end(), id);
      wanted += truth.size();
      own += std::count(top.begin(), top.end(), answers[q]);
      if (v == 0) gaps.push_back(gap);
    }
    own_recall.push_back(double(own) / queries.size());
    fmt::print("| {} | {:.5f} | {:.5f} | {:.3f} | {:.3f} |\n", variants[v].name, sum / count, worst,
               own_recall.back(), double(found) / wanted);
  }
  fmt::print("\nRecall@10 of the query's own item, quantized − fp32 (goal: within 0.01): ");
  for (std::size_t v = 1; v < variants.size(); ++v) {
    fmt::print("{} {:+.3f}{}", variants[v].name, own_recall[v] - own_recall[0],
               v + 1 < variants.size() ? ", " : ".\n");
  }
  fmt::print(
      "\nHow close the 10th and 11th neighbours are under fp32 (cosine), median over the "
      "queries: {:.5f}; the quantized embeddings move by about 1 − cosine to fp32.\n\n",
      Median(gaps));
}

}  // namespace
}  // namespace braid::quantize

int main(int argc, char** argv) {
  using namespace braid;
  using namespace braid::quantize;
  CLI::App app{"bench_quantize: INT8 vs FP32 on the CLIP stand-ins, side by side in one run"};
  std::string repository = BRAID_DEFAULT_MODEL_REPOSITORY;
  std::string pairs = BRAID_EVERYDAY_PAIRS;
  int rounds = 7;
  int pictures = 240;
  app.add_option("--repository", repository, "Model repository with clip-text and clip-image");
  app.add_option("--pairs", pairs, "Query<TAB>document pairs for the text retrieval");
  app.add_option("--rounds", rounds, "Timed rounds per batch size (median)")
      ->check(CLI::Range(1, 100));
  app.add_option("--pictures", pictures, "Pictures in the image collection")
      ->check(CLI::Range(40, 10000));
  CLI11_PARSE(app, argc, argv);

  const std::filesystem::path root = repository;
  auto text_pairs = align::ReadTextPairs(pairs);
  if (!text_pairs.ok()) Fail(text_pairs.status());
  std::vector<std::string> queries, documents;
  for (auto& [query, document] : *text_pairs) {
    queries.push_back(query);
    documents.push_back(document);
  }
  auto tokenizer = Check(LoadTokenizer(root / "clip-text/1/tokenizer.json"));
  Measure(fmt::format("clip-text: {} documents, {} queries", documents.size(), queries.size()),
          root / "clip-text/1/model.onnx", TextSamples(documents, *tokenizer, 77),
          TextSamples(queries, *tokenizer, 77), Identity(queries.size()), rounds);

  std::vector<cv::Mat> images, copies;
  std::vector<std::size_t> originals;
  for (int k = 0; k < pictures; ++k) {
    images.push_back(testing::Picture(1000 + k));
    if (k % 4 == 0) {
      copies.push_back(testing::NearCopy(images.back(), 70, 0.9, 0.05));
      originals.push_back(k);
    }
  }
  Measure(fmt::format("clip-image: {} pictures, {} near copies as queries", images.size(),
                      copies.size()),
          root / "clip-image/1/model.onnx", ImageSamples(images, 224), ImageSamples(copies, 224),
          originals, rounds);
  return 0;
}
