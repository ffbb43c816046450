// UrlFetcher: fetches a file a request refers to by URL (Dify's
// `transfer_method: remote_url`), guarded against server-side request
// forgery. Off unless hosts are allowed. A URL's host must be on the
// allow-list (an exact name or address, or "*.example.com" for its
// subdomains); the operator's listing of a host is trusted whatever address
// it has. A redirect (at most `max_redirects`) must lead to an allowed host
// too and, unless it stays on the same host and port, never to a loopback,
// private, link-local, unique-local, multicast or unspecified address (so a
// trusted file host cannot bounce a fetch onto this machine's or the
// cloud's internal services). Plain http only. Each fetch is bounded
// by `max_bytes` and `timeout` (connect to last byte). Blocking: call it off
// the network threads. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "core/status.h"

namespace braid {

struct FetchOptions {
  std::vector<std::string> allowed_hosts;  // empty: nothing is fetched
  std::size_t max_bytes = std::size_t{20} << 20;
  std::chrono::milliseconds timeout = std::chrono::seconds(10);
  int max_redirects = 3;
};

struct FetchedFile {
  std::string bytes;
  std::string media_type;  // the Content-Type's type/subtype, lower case
  std::string name;        // the path's last segment
};

class UrlFetcher {
 public:
  explicit UrlFetcher(FetchOptions options);

  bool enabled() const { return !options_.allowed_hosts.empty(); }
  // The file at `url`: InvalidArgument for a refused URL (the message says
  // why), TooLarge past max_bytes, DeadlineExceeded past the timeout,
  // Unavailable when the host cannot be reached or answers other than 200.
  Result<FetchedFile> Fetch(const std::string& url) const;

 private:
  bool Allowed(const std::string& host) const;

  const FetchOptions options_;
};

}  // namespace braid
