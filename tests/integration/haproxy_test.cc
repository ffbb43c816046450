// HAProxy 2.6 (Debian's `haproxy`) running deploy/haproxy/haproxy.cfg, with
// only the addresses rewritten, in front of three real `braid serve
// --agent-port 0` replicas on loopback: the agent's weight steers traffic
// away from a busy replica, a replica killed under load loses no
// idempotent request, and a drained one loses none either. Decided from
// events and counts (HAProxy's own `show stat`, the replicas' metrics),
// never from timings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "support/child_process.h"
#include "support/command.h"
#include "support/loopback.h"
#include "support/replica_load.h"
#include "support/server_process.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using testing::kIdentity;
using testing::LoadThenAct;
using testing::RunCommand;
using testing::Served;
using testing::ServerProcess;

constexpr int kReplicas = 3;

// A server line of `show stat`: its state and weight.
struct ServerStat {
  std::string status;  // UP, DOWN, DRAIN, MAINT, ...
  int weight = -1;
};

// haproxy -db on deploy/haproxy/haproxy.cfg, rewritten for `replicas`.
class HaproxyProcess {
 public:
  explicit HaproxyProcess(const std::vector<const ServerProcess*>& replicas)
      : http_port_(testing::FreeLoopbackPort()), grpc_port_(testing::FreeLoopbackPort()) {
    std::ifstream in(std::string(BRAID_SOURCE_DIR) + "/deploy/haproxy/haproxy.cfg");
    std::stringstream text;
    text << in.rdbuf();
    std::string config = text.str();
    config = std::regex_replace(config, std::regex("stats socket \\S+"),
                                "stats socket " + socket_path());
    config = std::regex_replace(config, std::regex("bind :8000"),
                                "bind 127.0.0.1:" + std::to_string(http_port_));
    config = std::regex_replace(config, std::regex("bind :8001"),
                                "bind 127.0.0.1:" + std::to_string(grpc_port_));
    for (int i = 0; i < kReplicas; ++i) {
      const std::string host = "10\\.0\\.0\\." + std::to_string(i + 1);
      const std::string agent = " agent-port " + std::to_string(replicas[i]->agent_port());
      config = std::regex_replace(config, std::regex(host + ":8000 agent-port 8003"),
                                  "127.0.0.1:" + std::to_string(replicas[i]->http_port()) + agent);
      config = std::regex_replace(config, std::regex(host + ":8001 agent-port 8003"),
                                  "127.0.0.1:" + std::to_string(replicas[i]->grpc_port()) + agent);
    }
    const auto file = dir_.Write("haproxy.cfg", config);
    process_.emplace(std::vector<std::string>{
        "/bin/sh", "-c", "echo started; exec haproxy -db -f " + file.string()});
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }

  // Each replica's line in the HTTP backend, as `show stat` reports it.
  std::vector<ServerStat> Stats() const {
    auto out = RunCommand(
                   "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
                   "s.connect('" +
                   socket_path() + "'); s.sendall(b'show stat\\n'); print(s.makefile().read())\"")
                   .out;
    std::vector<ServerStat> stats(kReplicas);
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      std::vector<std::string> fields;
      std::istringstream cells(line);
      for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
      // pxname, svname, ..., status (17), weight (18)
      if (fields.size() < 19 || fields[0] != "braid_http" || !fields[1].starts_with("replica"))
        continue;
      const int index = std::stoi(fields[1].substr(7)) - 1;
      if (index >= 0 && index < kReplicas) stats[index] = {fields[17], std::stoi(fields[18])};
    }
    return stats;
  }

  // Waits (polling `show stat`, up to a minute) until `ok` holds.
  bool WaitFor(const std::function<bool(const std::vector<ServerStat>&)>& ok) const {
    for (int i = 0; i < 3000; ++i) {
      if (ok(Stats())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

 private:
  std::string socket_path() const { return (dir_.path() / "haproxy.sock").string(); }

  testing::TempDir dir_;
  int http_port_;
  int grpc_port_;
  std::optional<testing::ChildProcess> process_;
};

class HaproxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto& replica : replicas_) {
      ASSERT_TRUE(replica.ready()) << replica.ready_line();
      ASSERT_GT(replica.agent_port(), 0) << replica.ready_line();
    }
    haproxy_.emplace(
        std::vector<const ServerProcess*>{&replicas_[0], &replicas_[1], &replicas_[2]});
    ASSERT_TRUE(haproxy_->WaitFor([](const auto& stats) {
      return std::all_of(stats.begin(), stats.end(),
                         [](const ServerStat& s) { return s.status == "UP" && s.weight == 100; });
    })) << "HAProxy never saw the three replicas up at full weight";
  }

  ServerProcess replicas_[kReplicas] = {ServerProcess({"--agent-port", "0"}),
                                        ServerProcess({"--agent-port", "0"}),
                                        ServerProcess({"--agent-port", "0"})};
  std::optional<HaproxyProcess> haproxy_;
};

// Replica 3 gets a backlog of large clip-image batches, kept full until the
// test ends: while one waits in its queue its agent says 1 %. HAProxy is
// seen to hold that weight before the identity requests go out and after
// they all came back, so over that span its weights are 100:100:1 and the
// requests go one at a time.
TEST_F(HaproxyTest, TheAgentsWeightSteersTrafficAwayFromABusyReplica) {
  testing::Backlog backlog(replicas_[2]);
  ASSERT_TRUE(haproxy_->WaitFor([](const auto& stats) { return stats[2].weight == 1; }))
      << "HAProxy never took replica 3's weight down";
  std::string urls;
  for (int i = 0; i < 40; ++i)
    urls += " -o /dev/null " + haproxy_->url() + "/v2/models/identity/infer";
  auto codes = RunCommand(
      "curl -s -w '%{http_code}\\n' -X POST -H 'Content-Type: "
      "application/json' -d '" +
      std::string(kIdentity) + "'" + urls);
  const auto after = haproxy_->Stats();
  ASSERT_EQ(after[2].weight, 1) << "replica 3's backlog drained before the requests ended";
  EXPECT_EQ(std::count(codes.out.begin(), codes.out.end(), '\n'), 40) << codes.out;
  EXPECT_EQ(codes.out.find_first_not_of("200\n"), std::string::npos) << codes.out;
  EXPECT_LE(Served(replicas_[2]), 1) << "shares: " << Served(replicas_[0]) << " "
                                     << Served(replicas_[1]) << " " << Served(replicas_[2]);
  EXPECT_GE(Served(replicas_[0]) + Served(replicas_[1]), 39);
}

TEST_F(HaproxyTest, AKilledReplicaLosesNoIdempotentRequest) {
  auto codes =
      LoadThenAct(haproxy_->url(), replicas_[1], [&] { kill(replicas_[1].pid(), SIGKILL); });
  EXPECT_EQ(codes.size(), 300u);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "200"), 300) << "every request answered";
  EXPECT_TRUE(haproxy_->WaitFor([](const auto& stats) { return stats[1].status == "DOWN"; }));
}

// SIGTERM: the replica's agent says "drain", HAProxy sends it nothing new,
// and what it had finishes; no client sees an error.
TEST_F(HaproxyTest, ADrainingReplicaLosesNoRequest) {
  auto codes =
      LoadThenAct(haproxy_->url(), replicas_[0], [&] { EXPECT_EQ(replicas_[0].Stop(), 0); });
  EXPECT_EQ(codes.size(), 300u);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "200"), 300) << "every request answered";
}

}  // namespace
}  // namespace braid
