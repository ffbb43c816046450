// HaproxyAgent: `braid serve --agent-port N`, the agent HAProxy's
// `agent-check` asks for this replica's state. HAProxy connects every
// `agent-inter`, reads one line and closes; braid writes the line and
// closes (the protocol of HAProxy 2.6's configuration manual, 5.2
// "agent-check"):
//
//   "up ready 73%\n"   serving: the weight, a percentage of the server's
//                      configured weight, falls as the replica gets busy;
//                      "ready" lifts a drain the agent set before
//   "drain\n"          draining (SIGTERM): HAProxy sends no new traffic,
//                      what it sent finishes
//   "down\n"           not ready (no model loaded)
//
// The weight is 100 × (1 − load), 1 % at least (0 % would drain), where the
// load is the busier of the busiest model's (ModelScheduler::CurrentLoad:
// 1 once every instance is busy with a queue behind it) and the compute
// budget's (runs waiting for a lease per lease; queue time shows there
// first).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"

namespace braid {

struct AgentState {
  bool ready = false;      // at least one model serves
  bool draining = false;   // SIGTERM came: no new work wanted
  double model_load = 0;   // InferenceService::Load(), in [0, 1]
  int budget_threads = 0;  // the compute budget's leases (0: no budget)
  int budget_waiting = 0;  // interactive runs waiting for a lease now
};

// The agent's answer for `state`, with its newline.
std::string AgentReply(const AgentState& state);

class HaproxyAgent {
 public:
  // `state` is asked once per check, on the agent's thread.
  explicit HaproxyAgent(std::function<AgentState()> state);
  ~HaproxyAgent();
  HaproxyAgent(const HaproxyAgent&) = delete;
  HaproxyAgent& operator=(const HaproxyAgent&) = delete;

  // Binds and listens; port 0 picks a free port. Returns the bound port.
  Result<std::uint16_t> Listen(const std::string& host, std::uint16_t port);
  // Starts answering on a thread of its own. Non-blocking.
  void Start();
  // Stops answering. Blocks until its thread has ended.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace braid
