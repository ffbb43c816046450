// bench/serving/request_costs: what one binary KServe request costs braid's
// serving path, counted rather than timed: heap allocations and lock
// acquisitions in the whole process (network threads, scheduler, model
// worker, completions) per request to the identity model, batch 1, over a
// real loopback HTTP/1.1 keep-alive connection. The HTTP server, routes and
// inference service run in process, as `braid serve` wires them.
//   bench_request_costs [--requests N] [-m REPOSITORY]
// Allocations are counted at malloc and its kin, so every library's count;
// the client thread allocates nothing while counting (its buffers are
// reserved up front).
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "backends/backends.h"
#include "core/compute_budget.h"
#include "frontends/http/http_server.h"
#include "frontends/http/routes.h"
#include "frontends/kserve/kserve_api.h"
#include "metrics/metrics.h"
#include "serving/inference_service.h"

namespace {

std::atomic<bool> counting{false};
std::atomic<std::uint64_t> allocations{0};
std::atomic<std::uint64_t> allocated_bytes{0};
std::atomic<std::uint64_t> mutex_locks{0};
std::atomic<std::uint64_t> rwlock_locks{0};

void Count(std::size_t size) {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    allocated_bytes.fetch_add(size, std::memory_order_relaxed);
  }
}

template <typename Function>
Function Next(const char* name) {
  return reinterpret_cast<Function>(dlsym(RTLD_NEXT, name));
}

}  // namespace

// Every heap allocation in the process (operator new, rapidjson, protobuf,
// ONNX Runtime, Beast) ends in one of these, which forward to glibc's.
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* pointer, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);

void* malloc(std::size_t size) {
  Count(size);
  return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) {
  Count(count * size);
  return __libc_calloc(count, size);
}
void* realloc(void* pointer, std::size_t size) {
  Count(size);
  return __libc_realloc(pointer, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  Count(size);
  *out = __libc_memalign(alignment, size);
  return *out == nullptr ? ENOMEM : 0;
}
void* aligned_alloc(std::size_t alignment, std::size_t size) {
  Count(size);
  return __libc_memalign(alignment, size);
}
}

// Every lock the process takes through pthreads (std::mutex,
// std::shared_mutex, condition variables' re-locks) passes here.
extern "C" int pthread_mutex_lock(pthread_mutex_t* mutex) {
  static auto real = Next<int (*)(pthread_mutex_t*)>("pthread_mutex_lock");
  if (counting.load(std::memory_order_relaxed)) mutex_locks.fetch_add(1, std::memory_order_relaxed);
  return real(mutex);
}
extern "C" int pthread_rwlock_rdlock(pthread_rwlock_t* lock) {
  static auto real = Next<int (*)(pthread_rwlock_t*)>("pthread_rwlock_rdlock");
  if (counting.load(std::memory_order_relaxed))
    rwlock_locks.fetch_add(1, std::memory_order_relaxed);
  return real(lock);
}
extern "C" int pthread_rwlock_wrlock(pthread_rwlock_t* lock) {
  static auto real = Next<int (*)(pthread_rwlock_t*)>("pthread_rwlock_wrlock");
  if (counting.load(std::memory_order_relaxed))
    rwlock_locks.fetch_add(1, std::memory_order_relaxed);
  return real(lock);
}

namespace braid {
namespace {

// One request written and its whole response read; false on any error.
bool RoundTrip(int fd, const std::string& request, std::string& response) {
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size()))
    return false;
  response.clear();
  std::size_t header_end = std::string::npos, total = 0;
  char buffer[4096];
  while (header_end == std::string::npos || response.size() < total) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return false;
    response.append(buffer, static_cast<std::size_t>(n));
    if (header_end == std::string::npos) {
      header_end = response.find("\r\n\r\n");
      if (header_end == std::string::npos) continue;
      const auto length = response.find("Content-Length: ");
      if (length == std::string::npos || length > header_end) return false;
      total = header_end + 4 + std::strtoull(response.c_str() + length + 16, nullptr, 10);
    }
  }
  return response.starts_with("HTTP/1.1 200");
}

// Sends `request` `n` times on `fd` with the counters on, then prints what
// one took under `title`; false on a failed round trip.
bool CountRoundTrips(int fd, const std::string& request, int n, const std::string& title) {
  allocations = 0;
  allocated_bytes = 0;
  mutex_locks = 0;
  rwlock_locks = 0;
  std::string response;
  response.reserve(1 << 16);
  counting = true;
  for (int i = 0; i < n; ++i) {
    if (!RoundTrip(fd, request, response)) {
      counting = false;
      fmt::print(stderr, "bench_request_costs: request failed: {}\n", response);
      return false;
    }
  }
  counting = false;
  const double count = n;
  fmt::print("{}, {} requests\n", title, n);
  fmt::print("  allocations per request      {:8.1f}\n", allocations.load() / count);
  fmt::print("  bytes allocated per request  {:8.0f}\n", allocated_bytes.load() / count);
  fmt::print("  mutex locks per request      {:8.1f}\n", mutex_locks.load() / count);
  fmt::print("  rwlock locks per request     {:8.1f}\n", rwlock_locks.load() / count);
  return true;
}

int Run(const std::string& repository_path, int requests, std::int64_t inline_max_us) {
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(repository_path, backends);
  SchedulerOptions scheduler_options;
  scheduler_options.budget = &ProcessComputeBudget();
  scheduler_options.inline_max_us = inline_max_us;
  InferenceService service(repository, SteadyClock(), scheduler_options);
  if (Status status = service.LoadAll(); !status.ok()) {
    fmt::print(stderr, "bench_request_costs: {}\n", status.message());
    return 1;
  }
  Metrics metrics;
  HttpServerOptions http_options;
  http_options.threads = 2;
  auto routes = std::make_shared<RouteTable>();
  KserveApi kserve(service, metrics, SteadyClock(), KserveLimits{});
  kserve.AddRoutes(*routes);
  HttpServer http(http_options, MakeApiHandler(service, metrics, ApiOptions{}, routes));
  auto port = http.Listen("127.0.0.1", 0);
  if (!port.ok()) {
    fmt::print(stderr, "bench_request_costs: {}\n", port.status().message());
    return 1;
  }
  http.Start();

  const std::string header =
      R"({"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}],)"
      R"("outputs":[{"name":"output","parameters":{"binary_data":true}}]})";
  std::string body = header + std::string(64, '\0');
  const std::string request = fmt::format(
      "POST /v2/models/identity/infer HTTP/1.1\r\nHost: bench\r\n"
      "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {}\r\n"
      "Content-Length: {}\r\n\r\n{}",
      header.size(), body.size(), body);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(*port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    fmt::print(stderr, "bench_request_costs: cannot connect\n");
    return 1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::string response;
  response.reserve(1 << 16);
  for (int i = 0; i < 500; ++i) {
    if (!RoundTrip(fd, request, response)) {
      fmt::print(stderr, "bench_request_costs: warm-up request failed: {}\n", response);
      return 1;
    }
  }
  // The readiness probe `braid router` and load balancers send, whose
  // X-Braid-Load header reads every model's load.
  const std::string probe = "GET /v2/health/ready HTTP/1.1\r\nHost: bench\r\n\r\n";
  const bool counted =
      CountRoundTrips(fd, request, requests,
                      "binary KServe request to identity, batch 1, HTTP/1.1 keep-alive") &&
      CountRoundTrips(
          fd, probe, requests,
          fmt::format("readiness probe (GET /v2/health/ready, {} models)", service.Stats().size()));
  close(fd);
  http.Stop();
  return counted ? 0 : 1;
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  braid::KeepEnginesSingleThreaded(argv);
  CLI::App app{
      "Allocations and lock acquisitions per binary KServe request and per readiness probe "
      "(counted, not timed)"};
  int requests = 5000;
  std::string repository = BRAID_DEFAULT_MODEL_REPOSITORY;
  app.add_option("--requests", requests, "Requests counted (after 500 of warm-up)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-m,--model-repository", repository, "Model repository with an identity model")
      ->capture_default_str();
  std::int64_t inline_max_us = braid::kDefaultInlineMaxUs;
  app.add_option("--inline-max-us", inline_max_us, "braid serve's --inline-max-us (0: never)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return braid::Run(repository, requests, inline_max_us);
}
