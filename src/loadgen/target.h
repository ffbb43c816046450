// Targets of `braid bench`: what sends one request and reports whether it
// succeeded. HTTP/1.1 keep-alive connections (a pool that grows to the
// concurrency offered) and gRPC (a few HTTP/2 channels), both asynchronous,
// so one process can offer hundreds of concurrent requests on two cores.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace inference {
class ModelInferRequest;
}

namespace braid {

class Target {
 public:
  using Done = std::function<void(bool ok)>;
  virtual ~Target() = default;
  // Sends request number `index` (modulo the target's requests). Calls
  // `done` exactly once, on another thread, never before returning.
  virtual void Send(std::size_t index, Done done) = 0;
  // A short description for reports ("http://127.0.0.1:8000/v2/models/...").
  virtual std::string Describe() const = 0;
};

struct HttpRequestSpec {
  std::string method = "POST";
  std::string path;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// `requests` are sent in turn. `threads` network threads.
Result<std::unique_ptr<Target>> MakeHttpTarget(const std::string& url,
                                               std::vector<HttpRequestSpec> requests,
                                               int threads = 2);
Result<std::unique_ptr<Target>> MakeGrpcTarget(const std::string& address,
                                               std::vector<inference::ModelInferRequest> requests,
                                               const std::string& api_key = "", int channels = 2);

// A blocking GET for setup (model metadata); the body on 2xx, an error
// naming the status otherwise.
Result<std::string> HttpGet(const std::string& url, const std::string& path,
                            const std::string& api_key = "");

}  // namespace braid
