// `braid router` in front of three real `braid serve` replicas on loopback,
// driven by curl: the spread under each policy, ejection of a killed
// replica without losing a request, and drain.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/child_process.h"
#include "support/command.h"
#include "support/fixtures.h"
#include "support/loopback.h"
#include "support/replica_load.h"
#include "support/server_process.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using testing::ClipImageBatch;
using ::testing::HasSubstr;
using testing::kIdentity;
using testing::Load;
using testing::LoadThenAct;
using testing::RunCommand;
using testing::Served;
using testing::ServerProcess;

// `braid router` as a child process, its ports read from its ready line.
class RouterProcess {
 public:
  explicit RouterProcess(const std::vector<const ServerProcess*>& replicas,
                         std::vector<std::string> extra = {})
      : process_(Args(replicas, std::move(extra))) {
    std::smatch match;
    const std::string& line = process_.first_line();
    if (std::regex_search(line, match, std::regex(R"(http=[^:]+:(\d+))")))
      port_ = std::stoi(match[1]);
    if (std::regex_search(line, match, std::regex(R"(grpc=[^:]+:(\d+))")))
      grpc_port_ = std::stoi(match[1]);
  }
  bool ready() const { return port_ > 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string grpc() const { return "127.0.0.1:" + std::to_string(grpc_port_); }

 private:
  static std::vector<std::string> Args(const std::vector<const ServerProcess*>& replicas,
                                       std::vector<std::string> extra) {
    std::vector<std::string> args = {
        BRAID_BINARY,           "router", "--host", "127.0.0.1", "--http-port", "0",
        "--health-interval-ms", "100"};
    for (const auto* replica : replicas) {
      args.push_back("--replica");
      args.push_back(replica->url());
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  testing::ChildProcess process_;
  int port_ = 0;
  int grpc_port_ = 0;
};

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto& replica : replicas_) ASSERT_TRUE(replica.ready()) << replica.ready_line();
  }
  std::vector<const ServerProcess*> All() const {
    return {&replicas_[0], &replicas_[1], &replicas_[2]};
  }
  ServerProcess replicas_[3];
};

TEST_F(RouterTest, RoundRobinSpreadsEvenly) {
  RouterProcess router(All());
  ASSERT_TRUE(router.ready());
  auto codes = Load(router.url() + "/v2/models/identity/infer", kIdentity, 30);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "200"), 30);
  for (const auto& replica : replicas_) EXPECT_EQ(Served(replica), 10);
  auto status = RunCommand("curl -s " + router.url() + "/router/replicas");
  EXPECT_THAT(status.out, HasSubstr("\"policy\":\"round_robin\""));
  EXPECT_EQ(
      RunCommand("curl -s -o /dev/null -w '%{http_code}' " + router.url() + "/v2/health/ready").out,
      "200");
}

// What the client gets through the router is what the replica answers:
// a streamed (chunked) workflow run's events, an error with its status, a
// body larger than one read, and a HEAD answer that has no body.
TEST_F(RouterTest, EveryKindOfAnswerPassesThroughUnchanged) {
  RouterProcess router({&replicas_[0]});
  ASSERT_TRUE(router.ready());
  testing::TempDir dir;
  // curl with `arguments` on `path`, straight to the replica and through the router.
  auto both = [&](const std::string& arguments, const std::string& path) {
    return std::pair{RunCommand("curl -s -m 60 " + arguments + " " + replicas_[0].url() + path),
                     RunCommand("curl -s -m 60 " + arguments + " " + router.url() + path)};
  };

  const auto run =
      dir.Write("run.json", R"({"inputs":{"image":")" + testing::FixtureImageDataUrl() +
                                R"("},"response_mode":"streaming"})");
  auto streamed = RunCommand("curl -s -N -m 60 -D " + (dir.path() / "head").string() +
                             " -X POST -H 'Content-Type: application/json' --data-binary @" +
                             run.string() + " " + router.url() + "/v1/workflows/read-aloud/run");
  std::ifstream head_file(dir.path() / "head");
  const std::string head(std::istreambuf_iterator<char>(head_file), {});
  EXPECT_THAT(head, HasSubstr("200"));
  EXPECT_THAT(head, HasSubstr("text/event-stream"));
  EXPECT_THAT(streamed.out, HasSubstr("\"event\":\"workflow_started\""));
  EXPECT_THAT(streamed.out, HasSubstr("\"event\":\"node_finished\""));
  EXPECT_THAT(streamed.out, HasSubstr("\"event\":\"workflow_finished\""));

  auto [direct_error, routed_error] =
      both("-w ' %{http_code}' -X POST -H 'Content-Type: application/json' -d '" +
               std::string(kIdentity) + "'",
           "/v2/models/nope/infer");
  EXPECT_THAT(routed_error.out, HasSubstr(" 404"));
  EXPECT_EQ(routed_error.out, direct_error.out);

  const auto large = dir.Write("large.json", ClipImageBatch(1, "0.5"));
  auto [direct_large, routed_large] =
      both("-w ' %{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @" +
               large.string(),
           "/v2/models/clip-image/infer");
  EXPECT_THAT(routed_large.out, HasSubstr("\"outputs\""));
  EXPECT_EQ(routed_large.out, direct_large.out);

  auto [direct_head, routed_head] =
      both("-I -o /dev/null -w '%{http_code}'", "/v2/models/identity");
  EXPECT_EQ(routed_head.out, direct_head.out);
}

// Decided from events and counts, not from how fast the machine is: replica
// 2 gets a backlog of large clip-image batches that its clients keep full
// until the test ends (each batch waits for the one before it), so it
// reports load 1 throughout; the router is seen to hold that load before the
// identity requests go out, and the backlog is seen to be still queued after
// they all came back. Over that span the router's weights are fixed (0.02
// for replica 2, 1 for the others) and the requests go one at a time.
TEST_F(RouterTest, LoadWeightedSendsLessToABusyReplica) {
  RouterProcess router(All(), {"--policy", "load_weighted"});
  ASSERT_TRUE(router.ready());
  testing::Backlog backlog(replicas_[2]);
  auto router_load = [&] {
    auto status = RunCommand("curl -s " + router.url() + "/router/replicas").out;
    std::regex load(R"("load":([0-9.]+))");
    std::vector<double> loads;
    for (std::sregex_iterator it(status.begin(), status.end(), load), end; it != end; ++it)
      loads.push_back(std::stod((*it)[1]));
    return loads.size() == 3 ? loads[2] : 0.0;
  };
  bool loaded = false;
  for (int i = 0; i < 600 && !loaded; ++i) {
    loaded = router_load() >= 0.999;
    if (!loaded) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(loaded) << "the router never saw replica 2's backlog";
  // One curl process, one keep-alive connection, one request at a time.
  std::string urls;
  for (int i = 0; i < 60; ++i)
    urls += " -o /dev/null " + router.url() + "/v2/models/identity/infer";
  auto codes = RunCommand(
      "curl -s -w '%{http_code}\\n' -X POST -H 'Content-Type: application/json' "
      "-d '" +
      std::string(kIdentity) + "'" + urls);
  const int still_queued = backlog.Queued();
  ASSERT_GT(still_queued, 0) << "replica 2's backlog drained before the identity requests ended";
  EXPECT_EQ(std::count(codes.out.begin(), codes.out.end(), '\n'), 60) << codes.out;
  EXPECT_EQ(codes.out.find_first_not_of("200\n"), std::string::npos) << codes.out;
  const int busy_share = Served(replicas_[2]);
  EXPECT_LT(busy_share * 4, std::min(Served(replicas_[0]), Served(replicas_[1])))
      << "shares: " << Served(replicas_[0]) << " " << Served(replicas_[1]) << " " << busy_share;
}

TEST_F(RouterTest, CacheAffinitySendsRepeatedInputsToOneReplica) {
  RouterProcess router(All(), {"--policy", "cache_affinity"});
  ASSERT_TRUE(router.ready());
  auto codes = Load(router.url() + "/v2/models/identity/infer", kIdentity, 12);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "200"), 12);
  std::vector<int> served = {Served(replicas_[0]), Served(replicas_[1]), Served(replicas_[2])};
  std::sort(served.begin(), served.end());
  EXPECT_EQ(served, (std::vector<int>{0, 0, 12}));
}

TEST_F(RouterTest, AKilledReplicaLosesNoIdempotentRequest) {
  RouterProcess router(All(), {"--policy", "least_outstanding"});
  ASSERT_TRUE(router.ready());
  auto codes = LoadThenAct(router.url(), replicas_[1], [&] { kill(replicas_[1].pid(), SIGKILL); });
  EXPECT_EQ(codes.size(), 300u);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "200"), 300) << "every request answered";
  auto status = RunCommand("curl -s " + router.url() + "/router/replicas").out;
  EXPECT_THAT(status, HasSubstr(replicas_[1].url() + "\",\"healthy\":false"));
}

TEST_F(RouterTest, ADrainedReplicaFinishesItsWorkAndGetsNoMore) {
  RouterProcess router(All());
  ASSERT_TRUE(router.ready());
  // Slow requests (a batch of 8 images each) spread over the replicas.
  testing::TempDir dir;
  const std::string batch = ClipImageBatch(8, "0.25");
  std::vector<std::string> slow;
  std::thread load([&] { slow = Load(router.url() + "/v2/models/clip-image/infer", batch, 6, 6); });
  // Drain replica 0 while its requests are in flight.
  for (int i = 0; i < 400; ++i) {
    auto status = RunCommand("curl -s " + router.url() + "/router/replicas").out;
    if (status.find("\"outstanding\":0") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto drained = RunCommand("curl -s -X POST '" + router.url() +
                            "/router/drain?replica=" + replicas_[0].url() + "'");
  EXPECT_THAT(drained.out, HasSubstr("\"draining\":true"));
  load.join();
  EXPECT_EQ(std::count(slow.begin(), slow.end(), "200"), 6) << "in-flight work finished";
  const int before = Served(replicas_[0]);
  auto codes = Load(router.url() + "/v2/models/identity/infer", kIdentity, 20);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "200"), 20);
  EXPECT_EQ(Served(replicas_[0]), before) << "no new work for the drained replica";
  EXPECT_EQ(Served(replicas_[1]) + Served(replicas_[2]), 20);
}

TEST_F(RouterTest, GrpcIsProxiedToo) {
  std::vector<std::string> extra = {"--grpc-port", "0"};
  for (const auto& replica : replicas_) {
    extra.push_back("--grpc-replica");
    extra.push_back("127.0.0.1:" + std::to_string(replica.grpc_port()));
  }
  RouterProcess router(All(), extra);
  ASSERT_TRUE(router.ready());
  testing::TempDir dir;
  auto bench = RunCommand(std::string(BRAID_BINARY) + " bench --endpoint grpc --url " +
                          replicas_[0].url() + " --grpc " + router.grpc() +
                          " -m identity -c 3 --warmup 0.2 --window 0.3 --max-windows 3 --csv " +
                          (dir.path() / "out.csv").string());
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  std::ifstream csv(dir.path() / "out.csv");
  std::string header, row;
  std::getline(csv, header);
  std::getline(csv, row);
  std::vector<std::string> fields;
  std::stringstream cells(row);
  for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
  ASSERT_EQ(fields.size(), 14u) << row;
  EXPECT_NE(header.find(",completed,error_p99_us"), std::string::npos) << header;
  EXPECT_EQ(fields[3], "0") << "no errors: " << row;
  const auto completed = std::stoi(fields[12]);
  int served = 0;
  for (const auto& replica : replicas_) {
    EXPECT_GT(Served(replica, "identity", "grpc"), 0) << "round robin reaches every replica";
    served += Served(replica, "identity", "grpc");
  }
  EXPECT_EQ(served, completed);
}

// A replica that passes its readiness checks and takes forwarded requests,
// but never answers them.
class SilentReplica {
 public:
  SilentReplica() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = testing::LoopbackAddress(0);
    bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(listener_, 16);
    socklen_t length = sizeof(address);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~SilentReplica() {
    shutdown(listener_, SHUT_RDWR);  // ends the accept
    thread_.join();
    close(listener_);
    for (int fd : held_) close(fd);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  void Serve() {
    for (int fd; (fd = accept(listener_, nullptr, nullptr)) >= 0;) {
      std::string head;
      char bytes[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = recv(fd, bytes, sizeof(bytes), 0);
        if (n <= 0) break;
        head.append(bytes, static_cast<std::size_t>(n));
      }
      if (head.starts_with("GET /v2/health/ready ")) {
        const std::string ready =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n"
            "Connection: close\r\n\r\n{\"ready\":true}";
        send(fd, ready.data(), ready.size(), MSG_NOSIGNAL);
        close(fd);
      } else {
        held_.push_back(fd);
      }
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::vector<int> held_;  // connections whose requests are never answered; the thread's
};

// A replica that takes the request and never answers: the client gets a 504
// saying so once --upstream-timeout has passed, not a wait as long as the
// replica likes.
TEST(RouterTimeoutTest, AReplicaThatNeverAnswersIsAnswered504AfterTheUpstreamTimeout) {
  SilentReplica replica;
  RouterProcess router({}, {"--replica", replica.url(), "--upstream-timeout", "1"});
  ASSERT_TRUE(router.ready());
  bool healthy = false;
  for (int i = 0; i < 300 && !healthy; ++i) {
    healthy =
        RunCommand("curl -s " + router.url() + "/router/replicas").out.find("\"healthy\":true") !=
        std::string::npos;
    if (!healthy) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(healthy) << "the router never saw the replica ready";
  const auto answer = RunCommand(
      "curl -s -m 60 -w ' %{http_code}' -X POST -H 'Content-Type: application/json' -d '" +
      std::string(kIdentity) + "' " + router.url() + "/v2/models/identity/infer");
  EXPECT_THAT(answer.out, HasSubstr("did not answer within 1 s"));
  EXPECT_THAT(answer.out, ::testing::EndsWith(" 504"));
}

}  // namespace
}  // namespace braid
