#include "frontends/http/load_report.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cstring>
#include <fstream>

#include "core/base64.h"
#include "core/compute_budget.h"

namespace braid {
namespace {

// The scalar fields, with their OrcaLoadReport field numbers.
struct Field {
  const char* name;
  int number;
  double value;
};
std::array<Field, 4> Fields(const LoadReport& report) {
  return {{{"cpu_utilization", 1, report.cpu_utilization},
           {"mem_utilization", 2, report.mem_utilization},
           {"rps_fractional", 6, report.rps_fractional},
           {"application_utilization", 9, report.application_utilization}}};
}
constexpr int kNamedMetrics = 8;

// Protocol buffers' wire format, the parts an OrcaLoadReport needs.
void Varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}
void Double(std::string& out, int number, double value) {
  Varint(out, static_cast<std::uint64_t>(number) << 3 | 1);  // wire type 1: 64-bit
  const auto bits = std::bit_cast<std::uint64_t>(value);
  for (int i = 0; i < 8; ++i) out += static_cast<char>(bits >> (8 * i));
}
void Bytes(std::string& out, int number, std::string_view bytes) {
  Varint(out, static_cast<std::uint64_t>(number) << 3 | 2);  // wire type 2: length-delimited
  Varint(out, bytes.size());
  out += bytes;
}

std::string Binary(const LoadReport& report) {
  std::string out;
  // proto3 leaves fields at their default (0) out.
  for (const Field& field : Fields(report)) {
    if (field.value != 0) Double(out, field.number, field.value);
  }
  for (const auto& [name, value] : report.named_metrics) {
    std::string entry;  // a map entry: key = 1, value = 2
    Bytes(entry, 1, name);
    Double(entry, 2, value);
    Bytes(out, kNamedMetrics, entry);
  }
  return out;
}

// The memory this process may use: the cgroup v2 limit when lower than
// the machine's memory.
double MemoryLimitBytes() {
  const double physical = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  std::ifstream limit("/sys/fs/cgroup/memory.max");
  double cgroup = 0;
  if (limit >> cgroup && cgroup > 0 && cgroup < physical) return cgroup;
  return physical;
}

double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  double size = 0, resident = 0;
  statm >> size >> resident;
  return resident * double(sysconf(_SC_PAGESIZE));
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

std::optional<LoadReportFormat> ParseLoadReportFormat(std::string_view header) {
  if (EqualsIgnoringCase(header, "text")) return LoadReportFormat::kText;
  if (EqualsIgnoringCase(header, "json")) return LoadReportFormat::kJson;
  if (EqualsIgnoringCase(header, "bin")) return LoadReportFormat::kBinary;
  return std::nullopt;
}

std::string EncodeLoadReport(const LoadReport& report, LoadReportFormat format) {
  if (format == LoadReportFormat::kBinary) return "BIN " + Base64Encode(Binary(report));
  std::string out;
  if (format == LoadReportFormat::kText) {
    out = "TEXT ";
    for (const Field& field : Fields(report))
      fmt::format_to(std::back_inserter(out), "{}={:.6g}, ", field.name, field.value);
    for (const auto& [name, value] : report.named_metrics)
      fmt::format_to(std::back_inserter(out), "named_metrics.{}={:.6g}, ", name, value);
    out.resize(out.size() - 2);
    return out;
  }
  out = "JSON {";
  for (const Field& field : Fields(report))
    fmt::format_to(std::back_inserter(out), "\"{}\":{:.6g},", field.name, field.value);
  out += "\"named_metrics\":{";
  const char* separator = "";
  for (const auto& [name, value] : report.named_metrics) {
    fmt::format_to(std::back_inserter(out), "{}\"{}\":{:.6g}", separator, name, value);
    separator = ",";
  }
  return out + "}}";
}

namespace {

constexpr char kLoadMetricsHeader[] = "endpoint-load-metrics";

class LoadReportingResponder : public HttpResponder {
 public:
  LoadReportingResponder(HttpResponderPtr inner, std::string value)
      : inner_(std::move(inner)), value_(std::move(value)) {}

  void Send(HttpResponse response) override {
    response.headers.emplace_back(kLoadMetricsHeader, value_);
    inner_->Send(std::move(response));
  }
  void SendFrom(std::function<HttpResponse()> make) override {
    inner_->SendFrom([make = std::move(make), value = value_] {
      HttpResponse response = make();
      response.headers.emplace_back(kLoadMetricsHeader, value);
      return response;
    });
  }
  void StartStream(int status, std::string content_type,
                   std::vector<std::pair<std::string, std::string>> headers) override {
    headers.emplace_back(kLoadMetricsHeader, value_);
    inner_->StartStream(status, std::move(content_type), std::move(headers));
  }
  bool WriteChunk(std::string data) override { return inner_->WriteChunk(std::move(data)); }
  void EndStream() override { inner_->EndStream(); }
  void OnDisconnect(std::function<void()> callback) override {
    inner_->OnDisconnect(std::move(callback));
  }
  void AcceptWebSocket(std::shared_ptr<WebSocketHandler> handler,
                       WebSocketOptions options) override {
    inner_->AcceptWebSocket(std::move(handler), options);
  }

 private:
  HttpResponderPtr inner_;
  std::string value_;
};

}  // namespace

HttpResponderPtr WithLoadReport(HttpResponderPtr responder, std::string value) {
  return std::make_shared<LoadReportingResponder>(std::move(responder), std::move(value));
}

LoadReporter::LoadReporter(Sources sources, std::chrono::steady_clock::duration period)
    : sources_(std::move(sources)),
      period_(period),
      sampled_at_(std::chrono::steady_clock::now()),
      cpu_seconds_(CpuSeconds()) {}

LoadReport LoadReporter::Current() {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - sampled_at_).count();
  if (sampled_ && now - sampled_at_ < period_) return report_;
  const double cpu = CpuSeconds();
  const std::uint64_t requests = requests_.load(std::memory_order_relaxed);
  if (elapsed > 0) {
    report_.cpu_utilization = (cpu - cpu_seconds_) / elapsed / AvailableCores();
    report_.rps_fractional = double(requests - requests_at_sample_) / elapsed;
  }
  report_.mem_utilization = ResidentBytes() / MemoryLimitBytes();
  report_.application_utilization = sources_.application_utilization();
  report_.named_metrics["queue_depth"] = sources_.queue_depth();
  sampled_ = true;
  sampled_at_ = now;
  cpu_seconds_ = cpu;
  requests_at_sample_ = requests;
  return report_;
}

}  // namespace braid
