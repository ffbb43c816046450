#include "metrics/metrics.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <tuple>

namespace braid {
namespace {

std::string Escape(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// A counter split by one label: a header, then `name{label="key"} value`
// for each pair.
void LabelledCounter(std::string& out, std::string_view name, std::string_view help,
                     std::string_view label,
                     std::initializer_list<std::pair<std::string_view, std::uint64_t>> values) {
  Header(out, name, "counter", help);
  for (const auto& [key, value] : values)
    fmt::format_to(std::back_inserter(out), "{}{{{}=\"{}\"}} {}\n", name, label, key, value);
}

// Process CPU seconds and resident bytes from /proc/self.
std::pair<double, double> ProcessUsage() {
  double cpu = 0, rss = 0;
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    auto close = line.rfind(')');
    std::istringstream fields(line.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) {
        stime = std::stod(field);
        break;
      }
    }
    cpu = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  std::ifstream statm("/proc/self/statm");
  double pages_total = 0, pages_resident = 0;
  if (statm >> pages_total >> pages_resident)
    rss = pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE));
  return {cpu, rss};
}

}  // namespace

Metrics::Metrics()
    : id_([] {
        static std::atomic<std::uint64_t> next{1};
        return next.fetch_add(1);
      }()) {}

Metrics::Shard& Metrics::LocalShard() {
  // Entries of destroyed Metrics objects stay behind, unmatched: ids are
  // never reused.
  thread_local std::vector<std::pair<std::uint64_t, Shard*>> shards;
  for (const auto& [id, shard] : shards) {
    if (id == id_) return *shard;
  }
  auto shard = std::make_unique<Shard>();
  Shard* raw = shard.get();
  {
    std::lock_guard lock(shards_mutex_);
    shards_.push_back(std::move(shard));
  }
  shards.emplace_back(id_, raw);
  return *raw;
}

void Metrics::ObserveRequest(std::string_view protocol, std::string_view model, int code,
                             Duration duration) {
  const double seconds = ToMicros(duration) / 1e6;
  Shard& shard = LocalShard();
  std::lock_guard lock(shard.mutex);
  const auto request_key = std::make_tuple(protocol, model, code);
  auto count = shard.requests.find(request_key);
  if (count == shard.requests.end())
    count =
        shard.requests.emplace(std::make_tuple(std::string(protocol), std::string(model), code), 0)
            .first;
  ++count->second;
  const auto series_key = std::make_pair(protocol, model);
  auto series = shard.durations.find(series_key);
  if (series == shard.durations.end())
    series = shard.durations
                 .emplace(std::make_pair(std::string(protocol), std::string(model)), Histogram{})
                 .first;
  Histogram& h = series->second;
  for (std::size_t b = 0; b < kBucketsS.size(); ++b) {
    if (seconds <= kBucketsS[b]) ++h.buckets[b];
  }
  ++h.count;
  h.sum += seconds;
}

void Metrics::Merge(RequestCounts* requests, Durations* durations) const {
  std::lock_guard shards_lock(shards_mutex_);
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    for (const auto& [key, count] : shard->requests) (*requests)[key] += count;
    for (const auto& [key, histogram] : shard->durations) {
      Histogram& sum = (*durations)[key];
      for (std::size_t b = 0; b < kBucketsS.size(); ++b) sum.buckets[b] += histogram.buckets[b];
      sum.count += histogram.count;
      sum.sum += histogram.sum;
    }
  }
}

Metrics::Latency Metrics::ModelRequestLatency() const {
  Latency latency;
  latency.bounds_s.assign(kBucketsS.begin(), kBucketsS.end());
  latency.cumulative.assign(kBucketsS.size(), 0);
  RequestCounts requests;
  Durations durations;
  Merge(&requests, &durations);
  for (const auto& [key, histogram] : durations) {
    if (key.second.empty()) continue;
    for (std::size_t b = 0; b < kBucketsS.size(); ++b)
      latency.cumulative[b] += histogram.buckets[b];
    latency.count += histogram.count;
    latency.sum_s += histogram.sum;
  }
  return latency;
}

void Metrics::RenderBudget(const ComputeBudgetStats& budget, std::string& out) {
  auto append = std::back_inserter(out);
  constexpr ComputeClass kClasses[] = {ComputeClass::kInteractive, ComputeClass::kBackground};
  Header(out, "braid_compute_threads", "gauge",
         "Threads of the compute budget that every model and engine shares.");
  fmt::format_to(append, "braid_compute_threads {}\n", budget.threads);
  Header(out, "braid_compute_leases", "gauge",
         "Batches computing now on the budget, by model and class (interactive, background).");
  for (const auto& [model, held] : budget.in_use_by_model) {
    for (ComputeClass cls : kClasses)
      fmt::format_to(append, "braid_compute_leases{{model=\"{}\",class=\"{}\"}} {}\n",
                     Escape(model), ComputeClassName(cls), held[static_cast<int>(cls)]);
  }
  Header(out, "braid_compute_leases_total", "counter",
         "Batches granted a lease on the budget, by model and class.");
  for (const auto& [model, granted] : budget.granted_by_model) {
    for (ComputeClass cls : kClasses)
      fmt::format_to(append, "braid_compute_leases_total{{model=\"{}\",class=\"{}\"}} {}\n",
                     Escape(model), ComputeClassName(cls), granted[static_cast<int>(cls)]);
  }
  Header(out, "braid_compute_waiting", "gauge", "Batches waiting for a lease now, by class.");
  for (ComputeClass cls : kClasses)
    fmt::format_to(append, "braid_compute_waiting{{class=\"{}\"}} {}\n", ComputeClassName(cls),
                   budget.waiting[static_cast<int>(cls)]);
  Header(out, "braid_compute_waited_total", "counter",
         "Leases that were granted only after a wait, by class.");
  for (ComputeClass cls : kClasses)
    fmt::format_to(append, "braid_compute_waited_total{{class=\"{}\"}} {}\n", ComputeClassName(cls),
                   budget.waited[static_cast<int>(cls)]);
  Header(out, "braid_compute_preemptions_total", "counter",
         "Priority-1 batches that started beside lower-priority work on the reserved share "
         "instead of waiting for it.");
  fmt::format_to(append, "braid_compute_preemptions_total {}\n", budget.preemptions);
}

std::string Metrics::Render(
    const std::map<std::string, std::map<std::int64_t, ModelMetricsInput>>& models,
    std::size_t in_flight, const std::optional<ResultCacheStats>& cache,
    const std::optional<ComputeBudgetStats>& budget) const {
  std::string out;
  {
    RequestCounts requests;
    Durations durations;
    Merge(&requests, &durations);
    Header(out, "braid_requests_total", "counter",
           "Requests answered, by protocol, model and status code.");
    for (const auto& [key, count] : requests) {
      const auto& [protocol, model, code] = key;
      fmt::format_to(std::back_inserter(out),
                     "braid_requests_total{{protocol=\"{}\",model=\"{}\",code=\"{}\"}} {}\n",
                     protocol, Escape(model), code, count);
    }
    Header(out, "braid_request_duration_seconds", "histogram",
           "Time from request received to response ready.");
    for (const auto& [key, h] : durations) {
      std::string labels =
          fmt::format("protocol=\"{}\",model=\"{}\"", key.first, Escape(key.second));
      for (std::size_t b = 0; b < kBucketsS.size(); ++b) {
        fmt::format_to(std::back_inserter(out),
                       "braid_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels,
                       kBucketsS[b], h.buckets[b]);
      }
      fmt::format_to(std::back_inserter(out),
                     "braid_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels,
                     h.count);
      fmt::format_to(std::back_inserter(out), "braid_request_duration_seconds_sum{{{}}} {}\n",
                     labels, h.sum);
      fmt::format_to(std::back_inserter(out), "braid_request_duration_seconds_count{{{}}} {}\n",
                     labels, h.count);
    }
  }

  auto per_model = [&](std::string_view name, std::string_view type, std::string_view help,
                       auto emit) {
    Header(out, name, type, help);
    for (const auto& [model, versions] : models) {
      for (const auto& [version, input] : versions) {
        emit(fmt::format("model=\"{}\",version=\"{}\"", Escape(model), version), input);
      }
    }
  };
  auto histogram_lines = [&](std::string_view name, const std::string& labels,
                             const DurationHistogram& h) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < std::size(DurationHistogram::kBoundsUs); ++b) {
      cumulative += h.counts[b];
      fmt::format_to(std::back_inserter(out), "{}_bucket{{{},le=\"{}\"}} {}\n", name, labels,
                     DurationHistogram::kBoundsUs[b] / 1e6, cumulative);
    }
    fmt::format_to(std::back_inserter(out), "{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels,
                   h.count);
    fmt::format_to(std::back_inserter(out), "{}_sum{{{}}} {}\n", name, labels, h.sum_us / 1e6);
    fmt::format_to(std::back_inserter(out), "{}_count{{{}}} {}\n", name, labels, h.count);
  };
  auto duration_histogram = [&](std::string_view name, std::string_view help, auto select) {
    per_model(name, "histogram", help,
              [&](const std::string& labels, const ModelMetricsInput& input) {
                histogram_lines(name, labels, select(input.stats));
              });
  };
  duration_histogram(
      "braid_queue_duration_seconds", "Time requests waited in the model's queue.",
      [](const SchedulerStats& s) -> const DurationHistogram& { return s.queue_time; });
  per_model("braid_priority_queue_duration_seconds", "histogram",
            "Time requests waited in the model's queue, by priority level.",
            [&](const std::string& labels, const ModelMetricsInput& input) {
              const auto& levels = input.stats.queue_time_by_level;
              for (std::size_t level = 0; level < levels.size(); ++level) {
                histogram_lines("braid_priority_queue_duration_seconds",
                                fmt::format("{},priority=\"{}\"", labels, level + 1),
                                levels[level]);
              }
            });
  duration_histogram(
      "braid_compute_duration_seconds", "Time a batch took to compute.",
      [](const SchedulerStats& s) -> const DurationHistogram& { return s.compute_time; });
  per_model(
      "braid_batch_size", "histogram", "Items per executed batch.",
      [&](const std::string& labels, const ModelMetricsInput& input) {
        const auto& sizes = input.stats.batch_sizes;
        std::uint64_t cumulative = 0, total = 0;
        double sum = 0;
        for (std::size_t b = 1; b < sizes.size(); ++b) {
          cumulative += sizes[b];
          sum += double(b) * sizes[b];
          if ((b & (b - 1)) == 0) {  // buckets at powers of two
            fmt::format_to(std::back_inserter(out), "braid_batch_size_bucket{{{},le=\"{}\"}} {}\n",
                           labels, b, cumulative);
          }
        }
        total = cumulative;
        fmt::format_to(std::back_inserter(out), "braid_batch_size_bucket{{{},le=\"+Inf\"}} {}\n",
                       labels, total);
        fmt::format_to(std::back_inserter(out), "braid_batch_size_sum{{{}}} {}\n", labels, sum);
        fmt::format_to(std::back_inserter(out), "braid_batch_size_count{{{}}} {}\n", labels, total);
      });
  per_model("braid_inference_requests_total", "counter",
            "Requests completed by the model's scheduler, by outcome.",
            [&](const std::string& labels, const ModelMetricsInput& input) {
              const auto& s = input.stats;
              for (auto [outcome, value] : {std::pair{"success", s.success},
                                            {"failure", s.failure},
                                            {"rejected", s.rejected},
                                            {"timeout", s.timed_out},
                                            {"cancelled", s.cancelled}}) {
                fmt::format_to(std::back_inserter(out),
                               "braid_inference_requests_total{{{},outcome=\"{}\"}} {}\n", labels,
                               outcome, value);
              }
            });
  per_model("braid_executions_total", "counter", "Batches executed.",
            [&](const std::string& labels, const ModelMetricsInput& input) {
              fmt::format_to(std::back_inserter(out), "braid_executions_total{{{}}} {}\n", labels,
                             input.stats.executions);
            });
  per_model(
      "braid_batches_preempted_total", "counter",
      "Batches stopped for a more urgent request and queued again (dynamic_batching.preempt).",
      [&](const std::string& labels, const ModelMetricsInput& input) {
        fmt::format_to(std::back_inserter(out), "braid_batches_preempted_total{{{}}} {}\n", labels,
                       input.stats.preempted);
      });
  per_model("braid_queue_depth", "gauge", "Requests queued now, by priority level.",
            [&](const std::string& labels, const ModelMetricsInput& input) {
              for (std::size_t level = 0; level < input.stats.queue_depth.size(); ++level) {
                fmt::format_to(std::back_inserter(out),
                               "braid_queue_depth{{{},priority=\"{}\"}} {}\n", labels, level + 1,
                               input.stats.queue_depth[level]);
              }
            });
  per_model("braid_model_utilization", "gauge",
            "Busy share of the model's instances over the last second.",
            [&](const std::string& labels, const ModelMetricsInput& input) {
              fmt::format_to(std::back_inserter(out), "braid_model_utilization{{{}}} {}\n", labels,
                             input.stats.utilization);
            });
  per_model("braid_model_instances", "gauge", "Instances taking work (autoscaled or fixed).",
            [&](const std::string& labels, const ModelMetricsInput& input) {
              fmt::format_to(std::back_inserter(out), "braid_model_instances{{{}}} {}\n", labels,
                             input.stats.active_instances);
            });
  per_model("braid_autoscale_events_total", "counter", "Autoscaler changes of the instance count.",
            [&](const std::string& labels, const ModelMetricsInput& input) {
              fmt::format_to(std::back_inserter(out),
                             "braid_autoscale_events_total{{{},direction=\"up\"}} {}\n"
                             "braid_autoscale_events_total{{{},direction=\"down\"}} {}\n",
                             labels, input.stats.scale_ups, labels, input.stats.scale_downs);
            });

  Header(out, "braid_inflight_requests", "gauge",
         "Inference requests admitted and not yet answered.");
  fmt::format_to(std::back_inserter(out), "braid_inflight_requests {}\n", in_flight);
  if (budget) RenderBudget(*budget, out);
  if (cache) {
    // Per tier: {tier="memory"} and {tier="redis"} for the tiers configured.
    using Tiered = std::vector<std::pair<const char*, std::uint64_t>>;
    auto tiered = [&](const char* name, const char* type, const char* help, const Tiered& values) {
      if (values.empty()) return;
      Header(out, name, type, help);
      for (const auto& [tier, value] : values)
        fmt::format_to(std::back_inserter(out), "{}{{tier=\"{}\"}} {}\n", name, tier, value);
    };
    Tiered hits, misses, memory_evictions, memory_rejections, memory_bytes, memory_entries;
    if (cache->memory) {
      hits.emplace_back("memory", cache->memory->hits);
      misses.emplace_back("memory", cache->memory->misses);
      memory_evictions.emplace_back("memory", cache->memory->evictions);
      memory_rejections.emplace_back("memory", cache->memory->rejections);
      memory_bytes.emplace_back("memory", cache->memory->bytes);
      memory_entries.emplace_back("memory", cache->memory->entries);
    }
    if (cache->redis) {
      hits.emplace_back("redis", cache->redis->hits);
      misses.emplace_back("redis", cache->redis->misses);
    }
    tiered("braid_cache_hits_total", "counter", "Result cache hits.", hits);
    tiered("braid_cache_misses_total", "counter", "Result cache misses.", misses);
    tiered("braid_cache_evictions_total", "counter", "Entries evicted from the result cache.",
           memory_evictions);
    tiered("braid_cache_rejections_total", "counter", "Entries the frequency filter kept out.",
           memory_rejections);
    tiered("braid_cache_bytes", "gauge", "Bytes held by the result cache.", memory_bytes);
    tiered("braid_cache_entries", "gauge", "Entries held by the result cache.", memory_entries);
    Header(out, "braid_cache_coalesced_total", "counter",
           "Misses that waited for an identical computation already under way (single-flight).");
    fmt::format_to(std::back_inserter(out), "braid_cache_coalesced_total {}\n", cache->coalesced);
    Header(out, "braid_cache_bypassed_total", "counter",
           "Misses that computed (and cached) their own result rather than wait for a less "
           "urgent identical computation (a precompute, a lower priority).");
    fmt::format_to(std::back_inserter(out), "braid_cache_bypassed_total {}\n", cache->bypassed);
    const PerceptualStats& perceptual = cache->perceptual;
    LabelledCounter(out, "braid_cache_image_keys_total",
                    "Keys given to images keyed perceptually (workflow inputs with cache_key: "
                    "perceptual, models with response_cache.key: perceptual), by how: exact "
                    "(bytes seen before), perceptual (a verified near duplicate's key), new (its "
                    "own).",
                    "how",
                    {{"exact", perceptual.exact},
                     {"perceptual", perceptual.perceptual},
                     {"new", perceptual.new_images}});
    LabelledCounter(out, "braid_cache_perceptual_candidates_total",
                    "Earlier images within the perceptual hash's range of a new one, by whether "
                    "their thumbnails verified the match.",
                    "result",
                    {{"verified", perceptual.verified}, {"rejected", perceptual.rejected}});
    Header(out, "braid_cache_perceptual_shared_total", "counter",
           "Images other replicas keyed perceptually, learnt through the Redis tier.");
    fmt::format_to(std::back_inserter(out), "braid_cache_perceptual_shared_total {}\n",
                   perceptual.shared);
    Header(out, "braid_cache_perceptual_images", "gauge", "Images the perceptual index remembers.");
    fmt::format_to(std::back_inserter(out), "braid_cache_perceptual_images {}\n",
                   perceptual.entries);
    const CanonicalStats& canonical = cache->canonical;
    LabelledCounter(
        out, "braid_cache_text_keys_total",
        "Text inputs declared cache_key: normalized or casefold, by whether their "
        "canonical form changed them (normalized) or they came canonical (as_sent).",
        "how", {{"normalized", canonical.text_normalized}, {"as_sent", canonical.text_as_sent}});
    const SemanticStats& semantic = cache->semantic;
    LabelledCounter(
        out, "braid_cache_semantic_total",
        "Runs of workflows with a semantic cache: hit (answered with an earlier "
        "similar run's outputs), miss, refused (the client refused semantic answers).",
        "result",
        {{"hit", semantic.hits}, {"miss", semantic.misses}, {"refused", semantic.refused}});
    LabelledCounter(out, "braid_cache_audio_keys_total",
                    "Audio keyed by its samples (workflow inputs with cache_key: pcm, models with "
                    "response_cache.key: pcm), by how: pcm (decoded samples) or bytes (it did not "
                    "decode).",
                    "how", {{"pcm", canonical.audio_pcm}, {"bytes", canonical.audio_bytes}});
    if (cache->redis) {
      const RedisStats& redis = *cache->redis;
      for (auto [name, type, help, value] :
           {std::tuple{"braid_cache_redis_up", "gauge",
                       "Whether the Redis tier answers (1) or is marked down (0).",
                       std::uint64_t{redis.up}},
            {"braid_cache_redis_errors_total", "counter",
             "Failed or timed-out Redis calls and undecodable values.", redis.errors},
            {"braid_cache_redis_writes_total", "counter", "Values written to Redis.", redis.writes},
            {"braid_cache_redis_dropped_writes_total", "counter",
             "Values not written: tier down, queue full or value too large.", redis.dropped_writes},
            {"braid_cache_redis_reconnects_total", "counter",
             "Times the Redis tier came back after being down.", redis.reconnects}}) {
        Header(out, name, type, help);
        fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
      }
    }
  }
  auto [cpu, rss] = ProcessUsage();
  Header(out, "braid_process_cpu_seconds_total", "counter", "CPU time used by the process.");
  fmt::format_to(std::back_inserter(out), "braid_process_cpu_seconds_total {}\n", cpu);
  Header(out, "braid_process_resident_memory_bytes", "gauge", "Resident memory of the process.");
  fmt::format_to(std::back_inserter(out), "braid_process_resident_memory_bytes {}\n", rss);
  return out;
}

}  // namespace braid
