#include "serving/url_fetcher.h"

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>

#include "core/io_step.h"

namespace braid {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct HttpUrl {
  std::string host;  // without brackets for IPv6
  std::string port = "80";
  std::string target = "/";
};

Result<HttpUrl> ParseHttpUrl(const std::string& url) {
  const std::string lower = Lower(url.substr(0, 8));
  if (lower.starts_with("https://")) {
    return InvalidArgument("'{}': only http:// URLs are fetched (no TLS client in this build)",
                           url);
  }
  if (!lower.starts_with("http://")) return InvalidArgument("'{}' is not an http:// URL", url);
  const std::string rest = url.substr(7);
  const std::size_t slash = rest.find_first_of("/?#");
  const std::string authority = rest.substr(0, slash);
  HttpUrl parsed;
  if (slash != std::string::npos) {
    parsed.target = rest.substr(slash);
    if (parsed.target[0] != '/') parsed.target = "/" + parsed.target;
    parsed.target = parsed.target.substr(0, parsed.target.find('#'));
  }
  if (authority.find('@') != std::string::npos)
    return InvalidArgument("'{}': URLs with credentials are not fetched", url);
  std::string host = authority;
  if (host.starts_with("[")) {
    const std::size_t close = host.find(']');
    if (close == std::string::npos) return InvalidArgument("'{}' has a malformed host", url);
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') return InvalidArgument("'{}' has a malformed host", url);
      parsed.port = host.substr(close + 2);
    }
    host = host.substr(1, close - 1);
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string::npos) {
    parsed.port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty() || parsed.port.empty() ||
      !std::all_of(parsed.port.begin(), parsed.port.end(),
                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return InvalidArgument("'{}' has a malformed host or port", url);
  }
  parsed.host = Lower(host);
  return parsed;
}

// Addresses a redirect must never reach: this machine, private and
// link-local networks (cloud metadata services live there), multicast.
bool IsInternal(const net::ip::address& address) {
  if (address.is_v6()) {
    const auto v6 = address.to_v6();
    if (v6.is_v4_mapped()) return IsInternal(net::ip::make_address_v4(net::ip::v4_mapped, v6));
    const auto bytes = v6.to_bytes();
    return v6.is_loopback() || v6.is_unspecified() || v6.is_link_local() || v6.is_multicast() ||
           (bytes[0] & 0xfe) == 0xfc;  // fc00::/7, unique local
  }
  const auto v4 = address.to_v4().to_uint();
  auto in = [v4](std::uint32_t network, int bits) {
    return (v4 >> (32 - bits)) == (network >> (32 - bits));
  };
  return in(0x00000000, 8) || in(0x0a000000, 8) || in(0x7f000000, 8) || in(0xa9fe0000, 16) ||
         in(0xac100000, 12) || in(0xc0a80000, 16) || in(0x64400000, 10) || in(0xe0000000, 4) ||
         v4 == 0xffffffff;
}

}  // namespace

UrlFetcher::UrlFetcher(FetchOptions options) : options_(std::move(options)) {}

bool UrlFetcher::Allowed(const std::string& host) const {
  return std::any_of(options_.allowed_hosts.begin(), options_.allowed_hosts.end(),
                     [&](const std::string& entry) {
                       const std::string allowed = Lower(entry);
                       if (allowed.starts_with("*.")) return host.ends_with(allowed.substr(1));
                       return host == allowed;
                     });
}

Result<FetchedFile> UrlFetcher::Fetch(const std::string& url) const {
  if (!enabled()) {
    return InvalidArgument(
        "remote_url files are not fetched: start braid serve with --fetch-hosts HOST,... to "
        "allow hosts");
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  std::string current = url;
  std::string origin;  // host:port of the previous hop
  for (int hop = 0;; ++hop) {
    BRAID_ASSIGN_OR_RETURN(HttpUrl target, ParseHttpUrl(current));
    if (!Allowed(target.host))
      return InvalidArgument("host '{}' is not on the fetch allow-list (--fetch-hosts)",
                             target.host);
    const bool same_origin = std::exchange(origin, target.host + ":" + target.port) == origin;
    try {
      net::io_context io;
      net::ip::tcp::resolver resolver(io);
      const auto endpoints = resolver.resolve(target.host, target.port);
      if (hop > 0 && !same_origin) {
        for (const auto& endpoint : endpoints) {
          if (IsInternal(endpoint.endpoint().address())) {
            return InvalidArgument("'{}' redirected to {}, an internal address ({})", url, current,
                                   endpoint.endpoint().address().to_string());
          }
        }
      }
      // Each step runs asynchronously to completion: the stream's expiry
      // bounds it.
      beast::tcp_stream stream(io);
      stream.expires_at(deadline);
      beast::error_code ec = RunStep(io, [&](auto done) { stream.async_connect(endpoints, done); });
      http::request<http::empty_body> request(http::verb::get, target.target, 11);
      request.set(http::field::host, target.host);
      request.set(http::field::user_agent, "braid");
      request.set(http::field::accept, "*/*");
      if (!ec) ec = RunStep(io, [&](auto done) { http::async_write(stream, request, done); });
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(options_.max_bytes);
      if (!ec) ec = RunStep(io, [&](auto done) { http::async_read(stream, buffer, parser, done); });
      if (ec == http::error::body_limit) {
        return MakeStatus(StatusCode::kTooLarge, "'{}' is over the {} bytes allowed", url,
                          options_.max_bytes);
      }
      if (ec == beast::error::timeout) {
        return MakeStatus(StatusCode::kDeadlineExceeded, "fetching '{}' took over {} ms", url,
                          options_.timeout.count());
      }
      if (ec) throw beast::system_error(ec);
      auto& response = parser.get();
      const unsigned status = response.result_int();
      if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
        if (hop >= options_.max_redirects)
          return InvalidArgument("'{}' redirected more than {} times", url, options_.max_redirects);
        std::string location(response[http::field::location]);
        if (location.starts_with("/")) {
          location =
              "http://" +
              (target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host) +
              ":" + target.port + location;
        }
        current = location;
        continue;
      }
      if (status != 200) return Unavailable("'{}' answered {}", url, status);
      FetchedFile file;
      file.bytes = std::move(response.body());
      const std::string type(response[http::field::content_type]);
      file.media_type = Lower(type.substr(0, type.find(';')));
      while (!file.media_type.empty() && file.media_type.back() == ' ') file.media_type.pop_back();
      const std::string path = target.target.substr(0, target.target.find('?'));
      file.name = path.substr(path.rfind('/') + 1);
      return file;
    } catch (const beast::system_error& e) {
      if (e.code() == beast::error::timeout) {
        return MakeStatus(StatusCode::kDeadlineExceeded, "fetching '{}' took over {} ms", url,
                          options_.timeout.count());
      }
      return Unavailable("fetching '{}' failed: {}", url, e.code().message());
    } catch (const std::exception& e) {
      return Unavailable("fetching '{}' failed: {}", url, e.what());
    }
  }
}

}  // namespace braid
