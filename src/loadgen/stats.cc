#include "loadgen/stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "frontends/kserve/kserve.h"

namespace braid {

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * sorted.size());
  const std::size_t index = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

LatencySummary Summarize(std::vector<double> latencies_us, std::vector<double> error_latencies_us,
                         std::uint64_t errors, double seconds) {
  std::sort(latencies_us.begin(), latencies_us.end());
  std::sort(error_latencies_us.begin(), error_latencies_us.end());
  LatencySummary summary;
  summary.requests = latencies_us.size();
  summary.errors = errors;
  summary.seconds = seconds;
  summary.throughput = seconds > 0 ? latencies_us.size() / seconds : 0;
  summary.p50_us = Percentile(latencies_us, 50);
  summary.p90_us = Percentile(latencies_us, 90);
  summary.p99_us = Percentile(latencies_us, 99);
  summary.max_us = latencies_us.empty() ? 0 : latencies_us.back();
  summary.error_p99_us = Percentile(error_latencies_us, 99);
  summary.mean_us =
      latencies_us.empty()
          ? 0
          : std::accumulate(latencies_us.begin(), latencies_us.end(), 0.0) / latencies_us.size();
  return summary;
}

std::string PointsToCsv(const std::vector<BenchPoint>& points) {
  std::string out =
      "mode,load,requests,errors,seconds,throughput,p50_us,p90_us,p99_us,max_us,mean_us,stable,"
      "completed,error_p99_us\n";
  for (const auto& point : points) {
    const auto& s = point.summary;
    fmt::format_to(std::back_inserter(out),
                   "{},{},{},{},{:.3f},{:.2f},{:.1f},{:.1f},{:.1f},{:.1f},{:.1f},{},{},{:.1f}\n",
                   point.mode, point.load, s.requests, s.errors, s.seconds, s.throughput, s.p50_us,
                   s.p90_us, s.p99_us, s.max_us, s.mean_us, point.stable ? "true" : "false",
                   point.completed, s.error_p99_us);
  }
  return out;
}

std::string PointsToJson(const std::vector<BenchPoint>& points, const std::string& target) {
  std::string out = "{\"target\":" + JsonQuoted(target) + ",\"points\":[";
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto& s = points[i].summary;
    fmt::format_to(
        std::back_inserter(out),
        "{}{{\"mode\":\"{}\",\"load\":{},\"requests\":{},\"errors\":{},\"seconds\":{:.3f},"
        "\"throughput\":{:.2f},\"p50_us\":{:.1f},\"p90_us\":{:.1f},\"p99_us\":{:.1f},"
        "\"max_us\":{:.1f},\"mean_us\":{:.1f},\"stable\":{},\"completed\":{},"
        "\"error_p99_us\":{:.1f},\"error_messages\":[",
        i ? "," : "", points[i].mode, points[i].load, s.requests, s.errors, s.seconds, s.throughput,
        s.p50_us, s.p90_us, s.p99_us, s.max_us, s.mean_us, points[i].stable, points[i].completed,
        s.error_p99_us);
    const auto& messages = points[i].error_messages;
    for (std::size_t m = 0; m < messages.size(); ++m) {
      fmt::format_to(std::back_inserter(out), "{}{{\"message\":{},\"count\":{}}}", m ? "," : "",
                     JsonQuoted(messages[m].first), messages[m].second);
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace braid
