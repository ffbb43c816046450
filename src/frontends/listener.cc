#include "frontends/listener.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

namespace braid {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

bool OutOfDescriptors(const boost::system::error_code& ec) {
  return ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
         ec == net::error::no_memory || ec.value() == ENFILE;
}

int OpenReserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

bool ConnectionLimits::Admit(const std::string& address) {
  std::lock_guard lock(mutex_);
  if (connections_ >= max_connections_) return false;
  auto it = per_address_.try_emplace(address, 0).first;
  if (max_per_address_ > 0 && it->second >= max_per_address_) return false;
  ++it->second;
  ++connections_;
  return true;
}

void ConnectionLimits::Release(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto it = per_address_.find(address);
  if (it == per_address_.end()) return;
  --connections_;
  if (--it->second == 0) per_address_.erase(it);
}

std::size_t ConnectionLimits::connections() const {
  std::lock_guard lock(mutex_);
  return connections_;
}

Listener::Listener(net::io_context& io, ConnectionLimits& limits, std::string refusal,
                   OnAccept on_accept, PlaceSocket place)
    : limits_(limits),
      refusal_(std::move(refusal)),
      on_accept_(std::move(on_accept)),
      place_(place ? std::move(place) : [&io]() -> net::io_context& { return io; }),
      acceptor_(net::make_strand(io)),
      pause_(acceptor_.get_executor()),
      reserve_fd_(OpenReserve()) {}

Listener::~Listener() {
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

Result<std::uint16_t> Listener::Listen(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return InvalidArgument("'{}' is not an IP address to listen on", host);
  tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on {}:{}: {}", host, port, ec.message());
  return acceptor_.local_endpoint().port();
}

void Listener::Start() {
  net::dispatch(acceptor_.get_executor(), [this] { Accept(); });
}

void Listener::Close() {
  net::post(acceptor_.get_executor(), [this] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    pause_.cancel();
  });
}

int Listener::native_handle() { return acceptor_.native_handle(); }

void Listener::Accept() {
  acceptor_.async_accept(
      place_().get_executor(), [this](boost::system::error_code ec, Socket socket) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
        if (OutOfDescriptors(ec)) {
          if (reserve_fd_ >= 0) {
            ::close(std::exchange(reserve_fd_, -1));
            return Accept();
          }
          // Said once per episode, not every 100 ms.
          if (!paused_)
            spdlog::warn("out of file descriptors ({}); accepting pauses", ec.message());
          paused_ = true;
          pause_.expires_after(std::chrono::milliseconds(100));
          pause_.async_wait([this](boost::system::error_code wait) {
            if (wait || !acceptor_.is_open()) return;
            if (reserve_fd_ < 0) reserve_fd_ = OpenReserve();
            Accept();
          });
          return;
        }
        if (!ec) {
          if (std::exchange(paused_, false)) spdlog::info("descriptors are back; accepting again");
          boost::system::error_code peer_error;
          const auto peer = socket.remote_endpoint(peer_error);
          std::string address = peer_error ? std::string() : peer.address().to_string();
          if (limits_.Admit(address)) {
            socket.set_option(tcp::no_delay(true), peer_error);
            on_accept_(std::move(socket), std::move(address));
          } else {
            Refuse(socket);
          }
        }
        Accept();
      });
}

// Answers without waiting on the client, and closes.
void Listener::Refuse(Socket& socket) {
  boost::system::error_code ignored;
  if (!refusal_.empty()) {
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(refusal_), ignored);
  }
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

}  // namespace braid
