// RunStep: one asynchronous Asio/Beast operation run to completion on a
// private io_context, for blocking clients that need the operation's
// timeout: a beast::tcp_stream's expiry bounds only asynchronous calls, and
// its synchronous ones wait for ever.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>

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

}  // namespace braid
