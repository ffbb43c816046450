#include "frontends/agent/haproxy_agent.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cmath>
#include <optional>
#include <thread>

#include "frontends/listener.h"

namespace braid {

namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string AgentReply(const AgentState& state) {
  if (state.draining) return "drain\n";
  if (!state.ready) return "down\n";
  double load = std::clamp(state.model_load, 0.0, 1.0);
  if (state.budget_threads > 0)
    load = std::max(load, std::min(1.0, double(state.budget_waiting) / state.budget_threads));
  const int weight = std::clamp(static_cast<int>(std::lround(100 * (1 - load))), 1, 100);
  return fmt::format("up ready {}%\n", weight);
}

namespace {

// HAProxy checks every few seconds per server: a few connections at once
// is all a healthy setup makes.
constexpr std::size_t kMaxConnections = 64;
// How long a connection may stay open after its answer (HAProxy closes at
// once; anything else is let go).
constexpr std::chrono::seconds kLinger{2};

// One check: the answer, then whatever the checker sends (an `agent-send`
// string) is read and dropped until it closes, so that closing never
// resets a connection whose answer is still in flight.
class Check : public std::enable_shared_from_this<Check> {
 public:
  Check(tcp::socket socket, std::string address, ConnectionLimits& limits)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        address_(std::move(address)),
        limits_(limits) {}
  ~Check() { limits_.Release(address_); }

  void Answer(std::string reply) {
    reply_ = std::move(reply);
    timer_.expires_after(kLinger);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code error) {
      if (!error) self->socket_.close(error);
    });
    net::async_write(socket_, net::buffer(reply_),
                     [self = shared_from_this()](boost::system::error_code error, std::size_t) {
                       if (error) return self->Close();
                       self->socket_.shutdown(tcp::socket::shutdown_send, error);
                       self->Drop();
                     });
  }

 private:
  void Drop() {
    socket_.async_read_some(
        net::buffer(scratch_),
        [self = shared_from_this()](boost::system::error_code error, std::size_t) {
          if (error) return self->Close();
          self->Drop();
        });
  }
  void Close() {
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  tcp::socket socket_;
  net::steady_timer timer_;
  std::string address_;
  ConnectionLimits& limits_;
  std::string reply_;
  char scratch_[256];
};

}  // namespace

class HaproxyAgent::Impl {
 public:
  explicit Impl(std::function<AgentState()> state)
      : state_(std::move(state)),
        listener_(io_, limits_, "", [this](tcp::socket socket, std::string address) {
          std::make_shared<Check>(std::move(socket), std::move(address), limits_)
              ->Answer(AgentReply(state_()));
        }) {}

  std::function<AgentState()> state_;
  ConnectionLimits limits_{kMaxConnections, 0};
  net::io_context io_{1};
  Listener listener_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::thread thread_;
};

HaproxyAgent::HaproxyAgent(std::function<AgentState()> state)
    : impl_(std::make_unique<Impl>(std::move(state))) {}

HaproxyAgent::~HaproxyAgent() { Stop(); }

Result<std::uint16_t> HaproxyAgent::Listen(const std::string& host, std::uint16_t port) {
  return impl_->listener_.Listen(host, port);
}

void HaproxyAgent::Start() {
  impl_->work_.emplace(impl_->io_.get_executor());
  impl_->listener_.Start();
  impl_->thread_ = std::thread([this] { impl_->io_.run(); });
}

void HaproxyAgent::Stop() {
  if (!impl_->thread_.joinable()) return;
  impl_->listener_.Close();
  impl_->work_.reset();
  impl_->io_.stop();
  impl_->thread_.join();
}

}  // namespace braid
