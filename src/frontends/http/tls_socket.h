// A server's TLS connection, leaner than Asio's ssl::stream over Beast's
// TCP stream (which cost braid's HTTP/1.1 over TLS about a quarter of its
// plaintext throughput): OpenSSL reads the ciphertext from the
// connection's own buffer and writes into another through a BIO of
// braid's, and reads and writes go straight to the socket, with no memory
// BIO to copy through and no Beast operation or timer around them.
// Internal to src/frontends/http.
//
// One read and one write may be outstanding at once, as on a socket. Every
// caller runs on the connection's thread (the one that runs the socket's
// context), so OpenSSL is never entered twice at once, and handlers are
// called there, through the socket's executor, not one of their own. Reads and writes have no
// timeouts (they bypass the TCP stream's timer): the connection keeps its
// deadlines. Bytes OpenSSL writes while reading (a key update's answer, an
// alert) go out with the next write.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/role.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "frontends/listener.h"

namespace braid::http_internal {

class TlsSocket {
 public:
  using executor_type = Listener::Executor;
  using next_layer_type = boost::beast::basic_stream<boost::asio::ip::tcp, executor_type>;

  // Takes `socket` for the server's side of a handshake; the connection's
  // SSL object is made from `context` and holds its own reference to it.
  TlsSocket(Listener::Socket socket, SSL_CTX* context);
  TlsSocket(TlsSocket&& other) noexcept;
  TlsSocket& operator=(TlsSocket&&) = delete;
  ~TlsSocket();

  executor_type get_executor() { return tcp_.get_executor(); }
  next_layer_type& next_layer() { return tcp_; }
  SSL* native_handle() { return ssl_; }

  // The handshake, after `received` (bytes the caller already read from
  // the socket). Completes with (error_code).
  template <typename Token>
  auto async_handshake(boost::asio::const_buffer received, Token&& token) {
    wire_->Put(received);
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        HandshakeOperation{*this}, token, tcp_.socket());
  }

  // Completes with (error_code, bytes): at least one byte, or an error
  // (net::error::eof once the client has closed).
  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    boost::asio::mutable_buffer into;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && into.size() == 0; ++it) {
      into = boost::asio::mutable_buffer(*it);
    }
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, into](auto handler) {
          ReadOperation<decltype(handler)>{*this, into, std::move(handler)}.Start();
        },
        token);
  }

  // Completes with (error_code, bytes). Small buffers are gathered into one
  // record (a response's head and body in one, as in one plain write).
  template <typename Buffers, typename Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    boost::asio::const_buffer from;
    auto it = boost::asio::buffer_sequence_begin(buffers);
    const auto end = boost::asio::buffer_sequence_end(buffers);
    for (; it != end && from.size() == 0; ++it) from = boost::asio::const_buffer(*it);
    if (from.size() < kRecordBytes && boost::asio::buffer_size(buffers) > from.size()) {
      if (staging_.empty()) staging_.resize(kRecordBytes);
      from = boost::asio::buffer(staging_.data(),
                                 boost::asio::buffer_copy(boost::asio::buffer(staging_), buffers));
    }
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, from](auto handler) {
          WriteOperation<decltype(handler)>{*this, boost::asio::buffer(from, kWriteBytes),
                                            std::move(handler)}
              .Start();
        },
        token);
  }

  // Sends close_notify if the socket takes it now, then closes the socket.
  void Close();

  // The ciphertext between OpenSSL and the socket, where the BIO finds it.
  // On the heap: the BIO keeps its address while the socket moves.
  struct Wire {
    std::vector<char> in;  // received, in[in_begin, in_end) not yet read
    std::size_t in_begin = 0;
    std::size_t in_end = 0;
    std::string out;      // written by OpenSSL, not yet sent
    std::string sending;  // being sent

    void Put(boost::asio::const_buffer bytes);
    // Where the next socket read goes.
    boost::asio::mutable_buffer Space();
    void Received(std::size_t n) { in_end += n; }
  };

 private:
  // The largest TLS record's payload.
  static constexpr std::size_t kRecordBytes = 16384;
  // The most plaintext one write encrypts before sending.
  static constexpr std::size_t kWriteBytes = 4 * kRecordBytes;

  // What an SSL call's result asks for next.
  enum class Next { kDone, kRead };

  // Calls `call` on ssl_ with a clean error queue and says what follows;
  // sets `ec` when the call failed for good.
  template <typename Call>
  Next Step(const Call& call, boost::system::error_code& ec) {
    if (ssl_ == nullptr) {
      ec = boost::asio::error::no_memory;
      return Next::kDone;
    }
    ClearErrors();
    return Classify(call(ssl_), ec);
  }
  static void ClearErrors();
  Next Classify(int result, boost::system::error_code& ec);
  // Moves what OpenSSL wrote to `sending`; false if there was nothing.
  bool TakeOutput();

  // Completes `self` with `args`: through the executor when the initiating
  // call has not returned yet (`first`).
  template <typename Self, typename... Args>
  void Complete(Self& self, bool first, Args... args) {
    if (!first) return self.complete(args...);
    Post([self = std::move(self)](Args... later) mutable { self.complete(later...); }, args...);
  }

  struct HandshakeOperation {
    TlsSocket& socket;
    bool first = true;
    bool reading = false;
    boost::system::error_code failed{};

    template <typename Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0) {
      auto& wire = *socket.wire_;
      if (reading) wire.Received(n);
      if (!reading) wire.sending.clear();
      if (ec || failed) return socket.Complete(self, std::exchange(first, false), ec ? ec : failed);
      const bool was_first = std::exchange(first, false);
      const Next next = socket.Step([](SSL* ssl) { return SSL_do_handshake(ssl); }, failed);
      // What OpenSSL wrote (its flight, or the alert of a failure) goes
      // out before anything else happens.
      if (socket.TakeOutput()) {
        reading = false;
        return boost::asio::async_write(socket.tcp_.socket(), boost::asio::buffer(wire.sending),
                                        std::move(self));
      }
      if (next == Next::kRead) {
        reading = true;
        return socket.tcp_.socket().async_read_some(wire.Space(), std::move(self));
      }
      socket.Complete(self, was_first, failed);
    }
  };

  // Calls `handler` with `args` through the connection's executor: for a
  // result known before the initiating call returns.
  template <typename Handler, typename... Args>
  void Post(Handler handler, Args... args) {
    boost::asio::post(tcp_.get_executor(),
                      [handler = std::move(handler), args...]() mutable { handler(args...); });
  }

  // A read: SSL_read until it gives bytes, reading the socket while
  // OpenSSL wants more. Its own handler for the socket's reads, which
  // complete on the connection's thread, so `handler` is called there.
  template <typename Handler>
  struct ReadOperation {
    TlsSocket& socket;
    boost::asio::mutable_buffer into;
    Handler handler;

    void Start() {
      boost::system::error_code ec;
      std::size_t done = 0;
      if (into.size() > 0 && Decrypt(ec, done) == Next::kRead) return Receive();
      socket.Post(std::move(handler), ec, done);
    }

    void operator()(boost::system::error_code ec, std::size_t n) {
      socket.wire_->Received(n);
      std::size_t done = 0;
      if (!ec && Decrypt(ec, done) == Next::kRead) return Receive();
      handler(ec, done);
    }

    // Anything OpenSSL writes while reading (a key update's answer) waits
    // for the next write, which sends it first.
    Next Decrypt(boost::system::error_code& ec, std::size_t& done) {
      return socket.Step(
          [this, &done](SSL* ssl) { return SSL_read_ex(ssl, into.data(), into.size(), &done); },
          ec);
    }
    void Receive() {
      auto& tcp = socket.tcp_.socket();
      tcp.async_read_some(socket.wire_->Space(), std::move(*this));
    }
  };

  // A write: SSL_write, then what it wrote sent whole.
  template <typename Handler>
  struct WriteOperation {
    TlsSocket& socket;
    boost::asio::const_buffer from;
    Handler handler;
    std::size_t done = 0;
    std::size_t sent = 0;

    void Start() {
      boost::system::error_code ec;
      if (from.size() > 0 &&
          socket.Step(
              [this](SSL* ssl) { return SSL_write_ex(ssl, from.data(), from.size(), &done); },
              ec) == Next::kRead) {
        ec = boost::asio::error::operation_not_supported;
      }
      if (ec || !socket.TakeOutput()) return socket.Post(std::move(handler), ec, done);
      Send();
    }

    void operator()(boost::system::error_code ec, std::size_t n) {
      sent += n;
      auto& sending = socket.wire_->sending;
      if (!ec && sent < sending.size()) return Send();
      sending.clear();
      // An answer far larger than a record does not keep its buffer.
      if (sending.capacity() > 2 * kRecordBytes) sending.shrink_to_fit();
      handler(ec, ec ? std::size_t{0} : done);
    }

    void Send() {
      const std::string& sending = socket.wire_->sending;
      auto& tcp = socket.tcp_.socket();
      tcp.async_write_some(boost::asio::buffer(sending.data() + sent, sending.size() - sent),
                           std::move(*this));
    }
  };

  next_layer_type tcp_;
  std::unique_ptr<Wire> wire_;
  SSL* ssl_;
  std::vector<char> staging_;  // a write's small buffers, gathered
};

// What Beast's WebSocket calls to close the connection under it.
void teardown(boost::beast::role_type, TlsSocket& socket, boost::system::error_code& ec);
template <typename Handler>
void async_teardown(boost::beast::role_type, TlsSocket& socket, Handler&& handler) {
  socket.Close();
  boost::asio::post(socket.get_executor(), [handler = std::forward<Handler>(handler)]() mutable {
    handler(boost::system::error_code());
  });
}

}  // namespace braid::http_internal
