#include "frontends/http/tls_socket.h"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cstring>
#include <new>

namespace braid::http_internal {

namespace net = boost::asio;

namespace {

// Room for a whole record of the largest size and its header, and more.
constexpr std::size_t kReadBytes = 32 * 1024;

}  // namespace

void TlsSocket::Wire::Put(net::const_buffer bytes) {
  const net::mutable_buffer space = Space();
  if (bytes.size() > space.size()) in.resize(in_end + bytes.size());
  std::memcpy(in.data() + in_end, bytes.data(), bytes.size());
  in_end += bytes.size();
}

net::mutable_buffer TlsSocket::Wire::Space() {
  if (in_begin == in_end) {
    in_begin = in_end = 0;
  } else if (in_begin > 0 && in.size() - in_end < kReadBytes / 2) {
    std::memmove(in.data(), in.data() + in_begin, in_end - in_begin);
    in_end -= in_begin;
    in_begin = 0;
  }
  if (in.size() - in_end < kReadBytes / 2) in.resize(in_end + kReadBytes);
  return net::buffer(in.data() + in_end, in.size() - in_end);
}

namespace {

// The BIO OpenSSL reads and writes: the connection's Wire.
int WireRead(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  auto* wire = static_cast<TlsSocket::Wire*>(BIO_get_data(bio));
  const std::size_t n =
      std::min<std::size_t>(static_cast<std::size_t>(size), wire->in_end - wire->in_begin);
  if (n == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  std::memcpy(data, wire->in.data() + wire->in_begin, n);
  wire->in_begin += n;
  return static_cast<int>(n);
}

int WireWrite(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  // No exception may cross OpenSSL's C frames.
  try {
    static_cast<TlsSocket::Wire*>(BIO_get_data(bio))
        ->out.append(data, static_cast<std::size_t>(size));
  } catch (const std::bad_alloc&) {
    return -1;
  }
  return size;
}

long WireControl(BIO* bio, int command, long, void*) {
  const auto* wire = static_cast<const TlsSocket::Wire*>(BIO_get_data(bio));
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING:
      return static_cast<long>(wire->in_end - wire->in_begin);
    case BIO_CTRL_WPENDING:
      return static_cast<long>(wire->out.size());
    default:
      return 0;
  }
}

int WireCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* WireMethod() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "braid wire");
    BIO_meth_set_read(made, WireRead);
    BIO_meth_set_write(made, WireWrite);
    BIO_meth_set_ctrl(made, WireControl);
    BIO_meth_set_create(made, WireCreate);
    return made;
  }();
  return method;
}

}  // namespace

TlsSocket::TlsSocket(Listener::Socket socket, SSL_CTX* context)
    : tcp_(std::move(socket)), wire_(std::make_unique<Wire>()), ssl_(SSL_new(context)) {
  BIO* bio = ssl_ == nullptr ? nullptr : BIO_new(WireMethod());
  if (bio == nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    return;
  }
  BIO_set_data(bio, wire_.get());
  SSL_set_bio(ssl_, bio, bio);
  SSL_set_accept_state(ssl_);
}

TlsSocket::TlsSocket(TlsSocket&& other) noexcept
    : tcp_(std::move(other.tcp_)),
      wire_(std::move(other.wire_)),
      ssl_(std::exchange(other.ssl_, nullptr)),
      staging_(std::move(other.staging_)) {}

TlsSocket::~TlsSocket() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

void TlsSocket::ClearErrors() { ERR_clear_error(); }

TlsSocket::Next TlsSocket::Classify(int result, boost::system::error_code& ec) {
  if (result > 0) return Next::kDone;
  switch (SSL_get_error(ssl_, result)) {
    case SSL_ERROR_WANT_READ:
      return Next::kRead;
    case SSL_ERROR_ZERO_RETURN:
      ec = net::error::eof;
      return Next::kDone;
    case SSL_ERROR_SYSCALL:
      // The BIO makes no system call: the stream ended where OpenSSL did
      // not expect it to, which the connection treats as the client gone.
      ec = net::error::eof;
      return Next::kDone;
    default: {
      const unsigned long error = ERR_get_error();
      ERR_clear_error();
      ec = error == 0
               ? boost::system::error_code(net::error::operation_not_supported)
               : boost::system::error_code(static_cast<int>(error), net::error::get_ssl_category());
      return Next::kDone;
    }
  }
}

bool TlsSocket::TakeOutput() {
  if (wire_->out.empty()) return false;
  wire_->sending.swap(wire_->out);
  return true;
}

void TlsSocket::Close() {
  boost::system::error_code ignored;
  // close_notify, unless a write is under way (it would interleave); sent
  // without waiting, so a full socket takes part of it or none.
  if (ssl_ != nullptr && tcp_.socket().is_open() && SSL_is_init_finished(ssl_) &&
      wire_->sending.empty()) {
    ClearErrors();
    SSL_shutdown(ssl_);
    tcp_.socket().non_blocking(true, ignored);
    tcp_.socket().send(net::buffer(wire_->out), 0, ignored);
    wire_->out.clear();
  }
  tcp_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  tcp_.close();
}

void teardown(boost::beast::role_type, TlsSocket& socket, boost::system::error_code& ec) {
  socket.Close();
  ec = {};
}

}  // namespace braid::http_internal
