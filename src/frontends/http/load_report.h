// ORCA load reports on HTTP answers, for Envoy's client-side weighted round
// robin (and any balancer that reads them): a request carrying
// `endpoint-load-metrics-format: text|json|bin` gets its answer with an
// `endpoint-load-metrics` header in that format, the fields of xDS's
// OrcaLoadReport (xds/data/orca/v3/orca_load_report.proto):
//
//   TEXT cpu_utilization=0.42, mem_utilization=0.06, rps_fractional=118.3,
//        application_utilization=0.5, named_metrics.queue_depth=3
//   JSON {"cpu_utilization":0.42,...,"named_metrics":{"queue_depth":3}}
//   BIN  <base64 of the serialized OrcaLoadReport>
//
// cpu_utilization is the process's CPU time over the last sample as a share
// of the cores it may use; mem_utilization its resident memory over the
// memory it may use (cgroup limit or physical); rps_fractional the requests
// a second it took; application_utilization the load the router and HAProxy
// agent see (the busiest model's, in [0, 1]); named_metrics.queue_depth the
// batch items waiting in the models' queues.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "frontends/http/http_server.h"

namespace braid {

struct LoadReport {
  double cpu_utilization = 0;
  double mem_utilization = 0;
  double rps_fractional = 0;
  double application_utilization = 0;
  std::map<std::string, double> named_metrics;
};

enum class LoadReportFormat { kText, kJson, kBinary };

// The format a request asks for (case-insensitive), or none.
std::optional<LoadReportFormat> ParseLoadReportFormat(std::string_view header);
// The `endpoint-load-metrics` header's value.
std::string EncodeLoadReport(const LoadReport& report, LoadReportFormat format);

// A responder whose answer (plain, encoded later, or streamed) carries the
// `endpoint-load-metrics` header with `value`.
HttpResponderPtr WithLoadReport(HttpResponderPtr responder, std::string value);

// Samples the process's load at most every `period`, so that a header on
// every request costs a copy, not a measurement. Thread-safe.
class LoadReporter {
 public:
  struct Sources {
    std::function<double()> application_utilization;
    std::function<double()> queue_depth;
  };
  explicit LoadReporter(
      Sources sources, std::chrono::steady_clock::duration period = std::chrono::milliseconds(100));

  // A request arrived (counted towards rps_fractional).
  void Count() { requests_.fetch_add(1, std::memory_order_relaxed); }
  LoadReport Current();

 private:
  const Sources sources_;
  const std::chrono::steady_clock::duration period_;
  std::atomic<std::uint64_t> requests_{0};
  std::mutex mutex_;
  bool sampled_ = false;                              // guarded by mutex_
  std::chrono::steady_clock::time_point sampled_at_;  // guarded by mutex_
  double cpu_seconds_ = 0;                            // guarded by mutex_
  std::uint64_t requests_at_sample_ = 0;              // guarded by mutex_
  LoadReport report_;                                 // guarded by mutex_
};

}  // namespace braid
