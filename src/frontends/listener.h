// Listener: the accepting side of a front end's TCP port, with what an
// untrusted network needs: caps on connections in all and per client
// address (a refused connection gets `refusal`'s bytes, if any, and is
// closed at once), and, when the process runs out of file descriptors, a
// pause of 100 ms instead of a spinning retry, with a reserve descriptor
// given up to take one more client. Internal to src/frontends: it shows
// Asio, which the rest of braid never sees.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/status.h"

namespace braid {

// The connections a front end holds, in all and per client address,
// against their caps. Thread-safe.
class ConnectionLimits {
 public:
  // `max_per_address` 0: no limit per address.
  ConnectionLimits(std::size_t max_connections, std::size_t max_per_address)
      : max_connections_(max_connections), max_per_address_(max_per_address) {}

  // Counts a connection from `address`; false (nothing counted) if a cap is
  // reached.
  bool Admit(const std::string& address);
  // A connection from `address` has ended.
  void Release(const std::string& address);
  std::size_t connections() const;

 private:
  const std::size_t max_connections_;
  const std::size_t max_per_address_;
  mutable std::mutex mutex_;
  std::size_t connections_ = 0;                               // guarded by mutex_
  std::unordered_map<std::string, std::size_t> per_address_;  // guarded by mutex_
};

class Listener {
 public:
  // A connection's executor: its network context's, which one thread runs.
  // Named concretely, not as Asio's type-erased any_io_executor, which every
  // handler of every operation would copy and dispatch through; not a
  // strand, whose lock and reference counts every handler would pay
  // (a connection keeps a strand of its own for work other threads hand it).
  using Executor = boost::asio::io_context::executor_type;
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
  // Takes an admitted connection and the client's address; the connection
  // counts in `limits` until the taker releases it.
  using OnAccept = std::function<void(Socket socket, std::string address)>;
  // The io_context the next connection's socket goes to.
  using PlaceSocket = std::function<boost::asio::io_context&()>;

  // `io` (where the listener accepts) and `limits` must outlive the
  // listener; `on_accept` runs on its strand. Each socket goes to the
  // context `place` gives (none: `io`).
  Listener(boost::asio::io_context& io, ConnectionLimits& limits, std::string refusal,
           OnAccept on_accept, PlaceSocket place = {});
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds and listens; port 0 picks a free port. Returns the bound port.
  Result<std::uint16_t> Listen(const std::string& host, std::uint16_t port);
  void Start();
  // Stops accepting (asynchronously, on the listener's strand).
  void Close();
  int native_handle();

 private:
  void Accept();
  void Refuse(Socket& socket);

  ConnectionLimits& limits_;
  const std::string refusal_;
  const OnAccept on_accept_;
  const PlaceSocket place_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer pause_;  // on the acceptor's strand
  int reserve_fd_;                   // touched only on the acceptor's strand
  bool paused_ = false;              // out of descriptors; touched only on the acceptor's strand
};

}  // namespace braid
