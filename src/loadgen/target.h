// Targets of `braid bench`: what sends one request and reports whether it
// succeeded. HTTP/1.1 keep-alive connections (a pool that grows to the
// concurrency offered), HTTP/2 (a few connections, each carrying many
// streams) and gRPC (a few HTTP/2 channels), plaintext or TLS, all
// asynchronous, so one process can offer hundreds of concurrent requests on
// two cores.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace inference {
class ModelInferRequest;
}

namespace braid {

class Target {
 public:
  // Empty when the request succeeded; else what went wrong ("HTTP 400:
  // {...}", "connect: Connection refused", "gRPC 5: ...").
  using Done = std::function<void(std::string_view error)>;
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

struct HttpClientOptions {
  int threads = 2;  // network threads
  // HTTP/2 (h2c with prior knowledge for http://, ALPN h2 for https://) on
  // `connections` connections; else HTTP/1.1.
  bool http2 = false;
  int connections = 1;
  // https:// (and gRPC over TLS): the CA that signed the server's
  // certificate; empty: the system's.
  std::string tls_ca;
};

// `requests` are sent in turn to `url` (http:// or https://).
Result<std::unique_ptr<Target>> MakeHttpTarget(const std::string& url,
                                               std::vector<HttpRequestSpec> requests,
                                               const HttpClientOptions& options = {});
// With `tls`, the channels speak TLS and trust `tls_ca` (empty: the
// system's CAs).
Result<std::unique_ptr<Target>> MakeGrpcTarget(const std::string& address,
                                               std::vector<inference::ModelInferRequest> requests,
                                               const std::string& api_key = "", int channels = 2,
                                               bool tls = false, const std::string& tls_ca = "");

// A blocking GET for setup (model metadata); the body on 2xx, an error
// naming the status otherwise.
Result<std::string> HttpGet(const std::string& url, const std::string& path,
                            const std::string& api_key = "", const std::string& tls_ca = "");

}  // namespace braid
