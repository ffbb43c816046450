// RunStep: one asynchronous Asio/Beast operation run to completion on a
// private io_context, for blocking clients that need the operation's
// timeout: a beast::tcp_stream's expiry bounds only asynchronous calls, and
// its synchronous ones wait for ever.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>

namespace braid {

// `start(handler)` begins the operation; returns its error code.
template <class Start>
boost::system::error_code RunStep(boost::asio::io_context& io, Start&& start) {
  boost::system::error_code result;
  start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

// As RunStep, for an operation that may have to end early: every `every`
// while it waits, `stop()` is asked, and once it says so `abort()` (which
// closes the operation's stream) is called and the operation's own end,
// with an error, waited for.
template <class Start, class Stop, class Abort>
boost::system::error_code RunStep(
    boost::asio::io_context& io, Start&& start, Stop&& stop, Abort&& abort,
    std::chrono::milliseconds every = std::chrono::milliseconds(100)) {
  boost::system::error_code result;
  bool done = false;
  start([&result, &done](boost::system::error_code ec, auto&&...) {
    result = ec;
    done = true;
  });
  io.restart();
  bool aborted = false;
  while (!done) {
    io.run_for(every);
    if (!done && !aborted && stop()) {
      abort();
      aborted = true;
    }
  }
  return result;
}

}  // namespace braid
