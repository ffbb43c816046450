// What HAProxy's agent-check reads from braid, state by state, and that the
// agent answers a real connection with it.
#include "frontends/agent/haproxy_agent.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>

#include "support/loopback.h"

namespace braid {
namespace {

AgentState Serving(double load) {
  AgentState state;
  state.ready = true;
  state.model_load = load;
  state.budget_threads = 2;
  return state;
}

TEST(HaproxyAgentTest, TheWeightFallsWithTheLoadAndNeverReachesZero) {
  EXPECT_EQ(AgentReply(Serving(0)), "up ready 100%\n");
  EXPECT_EQ(AgentReply(Serving(0.27)), "up ready 73%\n");
  EXPECT_EQ(AgentReply(Serving(1)), "up ready 1%\n") << "0% would drain the server";
  EXPECT_EQ(AgentReply(Serving(7)), "up ready 1%\n");
  AgentState waiting = Serving(0.1);
  waiting.budget_waiting = 1;  // one run waits for each two leases: the budget is the busier
  EXPECT_EQ(AgentReply(waiting), "up ready 50%\n");
  waiting.budget_waiting = 5;
  EXPECT_EQ(AgentReply(waiting), "up ready 1%\n");
}

TEST(HaproxyAgentTest, DrainingAndNotReadyAreSaidAsSuch) {
  AgentState draining = Serving(0);
  draining.draining = true;
  EXPECT_EQ(AgentReply(draining), "drain\n");
  AgentState starting;
  EXPECT_EQ(AgentReply(starting), "down\n");
}

TEST(HaproxyAgentTest, EachConnectionGetsTheStateOfItsMoment) {
  std::atomic<double> load{0};
  HaproxyAgent agent([&] { return Serving(load); });
  auto port = agent.Listen("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  agent.Start();
  auto read_all = [&] {
    const int fd = testing::ConnectLoopback(*port);
    std::string got;
    char buffer[64];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof(buffer))) > 0;) got.append(buffer, n);
    ::close(fd);
    return got;
  };
  EXPECT_EQ(read_all(), "up ready 100%\n");
  load = 0.5;
  EXPECT_EQ(read_all(), "up ready 50%\n") << "and the agent closed the connection after it";
  agent.Stop();
}

}  // namespace
}  // namespace braid
