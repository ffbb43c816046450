// bench_retrieval: what searching a collection costs, exact (flat) vs HNSW,
// in CLIP's raw 512-dimensional space vs the aligned 128-dimensional one.
//
// The items are synthetic: unit vectors drawn around 1000 random cluster
// centres (cosine to their centre about 0.7), as embeddings of a real
// collection cluster by topic; the queries come from the same clusters but
// are not items. The 128-dimensional items are a fixed random linear
// projection of the 512-dimensional ones, normalised: the align heads are
// such a projection (trained, where this one is random). Every index is a
// braid Collection in memory, built and searched through the same code the
// server runs. Per size it reports build time, single-query latency (k=10)
// p50/p99, HNSW recall@10 against the exact search of the same space, and
// the recall@10 of the exact 128-d search against the exact 512-d one.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <set>

#include "collections/collection.h"

namespace {

using Clock = std::chrono::steady_clock;
using braid::Collection;
using braid::CollectionPtr;
using braid::EmbeddingSpace;
using braid::IndexKind;

constexpr int kRawDimensions = 512;
constexpr int kAlignedDimensions = 128;
constexpr std::size_t kTopK = 10;
constexpr std::size_t kBatch = 20'000;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Normalise(float* vector, int dimension) {
  double norm = 0;
  for (int i = 0; i < dimension; ++i) norm += double(vector[i]) * vector[i];
  const double scale = 1 / std::sqrt(norm);
  for (int i = 0; i < dimension; ++i) vector[i] = static_cast<float>(vector[i] * scale);
}

// `count` clustered unit vectors of kRawDimensions, row-major.
std::vector<float> Clustered(std::size_t count, const std::vector<float>& centres,
                             std::mt19937& random) {
  const std::size_t clusters = centres.size() / kRawDimensions;
  std::normal_distribution<float> noise(0.f, 1.f / std::sqrt(float(kRawDimensions)));
  std::uniform_int_distribution<std::size_t> pick(0, clusters - 1);
  std::vector<float> out(count * kRawDimensions);
  for (std::size_t i = 0; i < count; ++i) {
    const float* centre = centres.data() + pick(random) * kRawDimensions;
    float* row = out.data() + i * kRawDimensions;
    for (int d = 0; d < kRawDimensions; ++d) row[d] = centre[d] + noise(random);
    Normalise(row, kRawDimensions);
  }
  return out;
}

std::vector<float> Project(const std::vector<float>& raw, const std::vector<float>& matrix) {
  const std::size_t count = raw.size() / kRawDimensions;
  std::vector<float> out(count * kAlignedDimensions);
  for (std::size_t i = 0; i < count; ++i) {
    const float* x = raw.data() + i * kRawDimensions;
    float* y = out.data() + i * kAlignedDimensions;
    for (int o = 0; o < kAlignedDimensions; ++o) {
      const float* w = matrix.data() + o * kRawDimensions;
      double sum = 0;
      for (int d = 0; d < kRawDimensions; ++d) sum += double(w[d]) * x[d];
      y[o] = static_cast<float>(sum);
    }
    Normalise(y, kAlignedDimensions);
  }
  return out;
}

// Builds a collection of every row of `vectors` (ids are row numbers).
CollectionPtr Build(IndexKind kind, EmbeddingSpace space, const std::vector<float>& vectors,
                    const braid::CollectionOptions& base, double* seconds) {
  const int dimension = braid::Dimensions(space);
  braid::CollectionOptions options = base;
  options.hnsw_threshold = kind == IndexKind::kHnsw ? 0 : std::numeric_limits<std::size_t>::max();
  auto collection = *Collection::Create("bench", space, {}, options);
  const std::size_t count = vectors.size() / dimension;
  const auto start = Clock::now();
  for (std::size_t first = 0; first < count; first += kBatch) {
    const std::size_t last = std::min(count, first + kBatch);
    std::vector<braid::Item> items(last - first);
    std::vector<std::vector<float>> rows;
    for (std::size_t i = first; i < last; ++i) {
      items[i - first].id = std::to_string(i);
      rows.emplace_back(vectors.begin() + i * dimension, vectors.begin() + (i + 1) * dimension);
    }
    auto added = collection->Add(std::move(items), std::move(rows));
    if (!added.ok()) {
      fmt::print(stderr, "add failed: {}\n", added.status().message());
      std::exit(1);
    }
    if (kind == IndexKind::kHnsw && count >= 100'000)
      fmt::print(stderr, "  hnsw {}-d: {}/{} items, {:.0f} s\n", dimension, last, count,
                 Seconds(start));
  }
  *seconds = Seconds(start);
  return collection;
}

struct Measured {
  double p50_ms = 0, p99_ms = 0;
  std::vector<std::vector<std::string>> results;  // ids per query
};

Measured SearchAll(const Collection& collection, const std::vector<float>& queries) {
  const int dimension = collection.dimension();
  const std::size_t count = queries.size() / dimension;
  Measured measured;
  std::vector<double> times;
  for (std::size_t q = 0; q < count; ++q) {
    std::span<const float> query(queries.data() + q * dimension, dimension);
    const auto start = Clock::now();
    auto matches = collection.Search(query, kTopK);
    times.push_back(Seconds(start) * 1000);
    std::vector<std::string> ids;
    for (const auto& match : *matches) ids.push_back(match.item.id);
    measured.results.push_back(std::move(ids));
  }
  std::sort(times.begin(), times.end());
  measured.p50_ms = times[times.size() / 2];
  measured.p99_ms = times[std::min(times.size() - 1, times.size() * 99 / 100)];
  return measured;
}

double Recall(const Measured& found, const Measured& truth) {
  std::size_t hits = 0, total = 0;
  for (std::size_t q = 0; q < truth.results.size(); ++q) {
    std::set<std::string> expected(truth.results[q].begin(), truth.results[q].end());
    for (const auto& id : found.results[q]) hits += expected.count(id);
    total += expected.size();
  }
  return total ? double(hits) / total : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_retrieval: collection search, flat vs HNSW, 512-d vs aligned 128-d"};
  std::vector<std::size_t> sizes = {10'000, 100'000};
  std::size_t query_count = 500;
  braid::CollectionOptions options;
  app.add_option("--sizes", sizes, "Collection sizes")->delimiter(',')->capture_default_str();
  app.add_option("--queries", query_count, "Queries per size")->capture_default_str();
  app.add_option("--hnsw-m", options.hnsw_m, "HNSW graph degree")->capture_default_str();
  app.add_option("--ef-construction", options.hnsw_ef_construction, "HNSW build effort")
      ->capture_default_str();
  app.add_option("--ef-search", options.hnsw_ef_search, "HNSW search effort")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::mt19937 random(7);
  std::normal_distribution<float> normal;
  std::vector<float> centres(1000 * kRawDimensions);
  for (float& x : centres) x = normal(random);
  for (std::size_t c = 0; c < 1000; ++c)
    Normalise(centres.data() + c * kRawDimensions, kRawDimensions);
  std::vector<float> matrix(kAlignedDimensions * kRawDimensions);
  for (float& x : matrix) x = normal(random);
  const std::vector<float> queries = Clustered(query_count, centres, random);
  const std::vector<float> aligned_queries = Project(queries, matrix);

  fmt::print(
      "HNSW: M={}, efConstruction={}, efSearch={}; {} queries per size, k={}, one query at "
      "a time on one thread.\n\n",
      options.hnsw_m, options.hnsw_ef_construction, options.hnsw_ef_search, query_count, kTopK);
  fmt::print("| items | space | index | build s | p50 ms | p99 ms | recall@10 | vs |\n");
  fmt::print("|---:|---|---|---:|---:|---:|---:|---|\n");
  std::vector<std::string> ratios;
  for (std::size_t size : sizes) {
    fmt::print(stderr, "{} items: generating\n", size);
    std::vector<float> raw = Clustered(size, centres, random);
    std::vector<float> aligned = Project(raw, matrix);
    Measured truth, flat_aligned;
    double p50[2][2] = {};  // [space][index]
    for (EmbeddingSpace space : {EmbeddingSpace::kClip, EmbeddingSpace::kClipAligned}) {
      const bool is_raw = space == EmbeddingSpace::kClip;
      const auto& vectors = is_raw ? raw : aligned;
      const auto& space_queries = is_raw ? queries : aligned_queries;
      Measured exact;
      for (IndexKind kind : {IndexKind::kFlat, IndexKind::kHnsw}) {
        fmt::print(stderr, "{} items: {} {}\n", size, braid::SpaceName(space),
                   braid::IndexKindName(kind));
        double build = 0;
        CollectionPtr collection = Build(kind, space, vectors, options, &build);
        Measured measured = SearchAll(*collection, space_queries);
        collection.reset();
        std::string recall = "1 (exact)", against = "";
        if (kind == IndexKind::kFlat) {
          exact = measured;
          if (is_raw) {
            truth = measured;
          } else {
            recall = fmt::format("{:.3f}", Recall(measured, truth));
            against = "exact 512-d";
          }
        } else {
          recall = fmt::format("{:.3f}", Recall(measured, exact));
          against = fmt::format("exact {}-d", braid::Dimensions(space));
        }
        p50[is_raw ? 0 : 1][kind == IndexKind::kFlat ? 0 : 1] = measured.p50_ms;
        fmt::print("| {} | {} | {} | {:.1f} | {:.3f} | {:.3f} | {} | {} |\n", size,
                   braid::SpaceName(space), braid::IndexKindName(kind), build, measured.p50_ms,
                   measured.p99_ms, recall, against);
        std::fflush(stdout);
      }
    }
    ratios.push_back(fmt::format(
        "- {} items: HNSW is {:.1f}× faster than flat at 512-d and {:.1f}× at 128-d (p50); 128-d "
        "costs {:.2f}× the 512-d search with flat and {:.2f}× with HNSW.",
        size, p50[0][0] / p50[0][1], p50[1][0] / p50[1][1], p50[1][0] / p50[0][0],
        p50[1][1] / p50[0][1]));
  }
  fmt::print("\n");
  for (const auto& line : ratios) fmt::print("{}\n", line);
  return 0;
}
