#include "workflow/remote_chat.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "core/io_step.h"

namespace braid {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

Status Cancelled() { return MakeStatus(StatusCode::kCancelled, "the caller stopped"); }

}  // namespace

Result<std::string> StreamChat(const UpstreamChat& upstream, const std::string& system,
                               const std::string& prompt,
                               const std::function<void(const std::string&)>& on_token,
                               const std::function<bool()>& stopped) {
  // http://host[:port][/path], split by hand: this runs on every call.
  constexpr std::string_view kScheme = "http://";
  std::string_view rest = upstream.base_url;
  const bool has_scheme = rest.starts_with(kScheme);
  rest.remove_prefix(has_scheme ? kScheme.size() : rest.size());
  const std::size_t slash = std::min(rest.find('/'), rest.size());
  const std::string_view authority = rest.substr(0, slash);
  const std::size_t colon = std::min(authority.find(':'), authority.size());
  const std::string host(authority.substr(0, colon));
  const std::string port =
      colon == authority.size() ? "80" : std::string(authority.substr(colon + 1));
  if (!has_scheme || host.empty() || port.empty() ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgument("upstream chat URL '{}' must be http://host[:port][/path]",
                           upstream.base_url);
  }
  std::string path(rest.substr(slash));
  while (!path.empty() && path.back() == '/') path.pop_back();
  path += "/chat/completions";

  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> json(buffer);
  json.StartObject();
  json.Key("model");
  json.String(upstream.model.c_str());
  json.Key("stream");
  json.Bool(true);
  json.Key("messages");
  json.StartArray();
  if (!system.empty()) {
    json.StartObject();
    json.Key("role");
    json.String("system");
    json.Key("content");
    json.String(system.c_str());
    json.EndObject();
  }
  json.StartObject();
  json.Key("role");
  json.String("user");
  json.Key("content");
  json.String(prompt.c_str());
  json.EndObject();
  json.EndArray();
  json.EndObject();

  try {
    // Each step runs asynchronously to completion, so that the stream's
    // expiry bounds it: the whole call until the answer starts, then the
    // wait for each next piece.
    net::io_context io;
    beast::tcp_stream stream(io);
    const auto timeout = std::chrono::seconds(upstream.timeout_s);
    stream.expires_after(timeout);
    net::ip::tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(host, port);
    // One step of the exchange. A stop closes the connection under it; the
    // step's error then ends the call as Cancelled (below).
    auto step = [&](auto start) {
      const beast::error_code ec = RunStep(io, start, stopped, [&stream] { stream.close(); });
      if (ec && ec != http::error::need_buffer) throw beast::system_error(ec);
    };
    step([&](auto done) { stream.async_connect(endpoints, done); });
    http::request<http::string_body> request(http::verb::post, path, 11);
    request.set(http::field::host, host);
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, "text/event-stream");
    if (!upstream.api_key.empty())
      request.set(http::field::authorization, "Bearer " + upstream.api_key);
    request.body() = buffer.GetString();
    request.prepare_payload();
    step([&](auto done) { http::async_write(stream, request, done); });

    beast::flat_buffer read_buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    step([&](auto done) { http::async_read_header(stream, read_buffer, parser, done); });
    const int status = static_cast<int>(parser.get().result_int());
    std::string reply, pending;
    char chunk[8192];
    bool done = false;
    while (!parser.is_done() && !done) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof(chunk);
      stream.expires_after(timeout);
      step([&](auto done) { http::async_read_some(stream, read_buffer, parser, done); });
      pending.append(chunk, sizeof(chunk) - parser.get().body().size);
      if (status != 200) continue;
      // Server-Sent Events: complete lines "data: {...}".
      std::size_t newline;
      while ((newline = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.starts_with("data:")) continue;
        std::string data = line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5);
        if (data == "[DONE]") {
          done = true;
          break;
        }
        rapidjson::Document event;
        event.Parse(data.c_str());
        if (event.HasParseError() || !event.IsObject()) continue;
        if (event.HasMember("error")) {
          // What the upstream says may hold its own secrets: logged here,
          // not passed to the client.
          spdlog::warn("upstream chat at {} sent an error: {}", upstream.base_url,
                       data.substr(0, 1000));
          return Unavailable("the upstream chat model sent an error (see braid's log)");
        }
        if (!event.HasMember("choices") || !event["choices"].IsArray() || event["choices"].Empty())
          continue;
        const auto& choice = event["choices"][0];
        if (choice.HasMember("delta") && choice["delta"].IsObject() &&
            choice["delta"].HasMember("content") && choice["delta"]["content"].IsString()) {
          std::string token = choice["delta"]["content"].GetString();
          if (token.empty()) continue;
          reply += token;
          if (stopped()) return Cancelled();
          on_token(token);
        }
      }
    }
    if (status != 200) {
      spdlog::warn("upstream chat at {} answered {}: {}", upstream.base_url, status,
                   pending.substr(0, 1000));
      return Unavailable("the upstream chat model answered {} (see braid's log)", status);
    }
    beast::error_code ignored;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    return reply;
  } catch (const std::exception& e) {
    if (stopped()) return Cancelled();
    spdlog::warn("upstream chat at {} failed: {}", upstream.base_url, e.what());
    return Unavailable("the upstream chat model could not be reached: {}", e.what());
  }
}

}  // namespace braid
