// The remote backend: a local `braid serve` whose clip-image is served by
// a second braid on loopback over KServe gRPC. A workflow through it gives
// the outputs the all-local run gives; with the remote killed its runs fail
// with a clear error while the rest of the server serves on; once the
// remote is back (same port), runs succeed again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <thread>

#include "support/command.h"
#include "support/fixtures.h"
#include "support/loopback.h"
#include "support/replica_load.h"
#include "support/server_process.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;

namespace fs = std::filesystem;

// The default repository with clip-image replaced by a remote one at
// `address` (the other models are links to the built ones).
fs::path RemoteRepository(const testing::TempDir& dir, const std::string& address) {
  const fs::path repository = dir.path() / "models";
  fs::create_directories(repository);
  for (const auto& model : fs::directory_iterator(BRAID_TEST_MODELS)) {
    if (model.path().filename() != "clip-image")
      fs::create_directory_symlink(model.path(), repository / model.path().filename());
  }
  dir.Write("models/clip-image/1/.keep", "");
  dir.Write("models/clip-image/config.yaml",
            R"(backend: remote
max_batch_size: 64
inputs:  [{name: pixel_values, datatype: FP32, dims: [3, 224, 224]}]
outputs: [{name: image_embeds, datatype: FP32, dims: [512]}]
instance_group: {count: 2}
dynamic_batching: {preferred_batch_size: [8], max_queue_delay_us: 2000}
parameters: {addresses: ")" +
                address + R"(", remote_model: clip-image, timeout_ms: "20000", eject_ms: "200"}
)");
  return repository;
}

// image-text-match on `server`, blocking: the HTTP code and the body.
std::pair<int, std::string> Match(const ServerProcess& server, const testing::TempDir& dir,
                                  const std::string& text) {
  const auto body =
      dir.Write("match.json", R"({"inputs":{"image":")" + testing::FixtureImageDataUrl() +
                                  R"(","text":")" + text + R"("},"response_mode":"blocking"})");
  auto result = RunCommand(
      "curl -s -m 60 -w '\\n%{http_code}' -X POST -H 'Content-Type: "
      "application/json' --data-binary @" +
      body.string() + " " + server.url() + "/v1/workflows/image-text-match/run");
  const auto newline = result.out.rfind('\n');
  if (newline == std::string::npos) return {0, result.out};
  return {std::atoi(result.out.c_str() + newline + 1), result.out.substr(0, newline)};
}

bool Succeeded(const std::pair<int, std::string>& run) {
  return run.first == 200 && run.second.find("\"status\":\"succeeded\"") != std::string::npos;
}

double Similarity(const std::string& body) {
  rapidjson::Document document;
  document.Parse(body.c_str());
  if (document.HasParseError() || !document.HasMember("data")) return NAN;
  const auto& outputs = document["data"]["outputs"];
  return outputs.HasMember("similarity") ? outputs["similarity"].GetDouble() : NAN;
}

TEST(RemoteBackendTest, AWorkflowNodeOnAnotherServerGivesTheLocalOutputs) {
  ServerProcess remote;
  ASSERT_TRUE(remote.ready()) << remote.ready_line();
  testing::TempDir dir;
  ServerProcess local(
      {"-m", RemoteRepository(dir, "127.0.0.1:" + std::to_string(remote.grpc_port())).string()});
  ASSERT_TRUE(local.ready()) << local.ready_line();

  const auto all_remote = Match(remote, dir, "a red square");
  const auto through_remote = Match(local, dir, "a red square");
  ASSERT_TRUE(Succeeded(all_remote)) << all_remote.second;
  ASSERT_TRUE(Succeeded(through_remote)) << through_remote.second;
  EXPECT_NEAR(Similarity(through_remote.second), Similarity(all_remote.second), 1e-5);
  EXPECT_GE(testing::Served(remote, "clip-image", "grpc"), 1) << "the image ran at the remote";
}

TEST(RemoteBackendTest, AConfigThatDoesNotMatchTheRemoteModelFailsToLoadSayingWhy) {
  ServerProcess remote;
  ASSERT_TRUE(remote.ready()) << remote.ready_line();
  testing::TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(remote.grpc_port());
  const fs::path repository = RemoteRepository(dir, address);
  dir.Write("models/clip-small/1/.keep", "");
  dir.Write("models/clip-small/config.yaml", R"(backend: remote
max_batch_size: 64
inputs:  [{name: pixel_values, datatype: FP32, dims: [3, 64, 64]}]
outputs: [{name: image_embeds, datatype: FP32, dims: [512]}]
parameters: {addresses: ")" + address + R"(", remote_model: clip-image}
)");
  ServerProcess local({"-m", repository.string()});
  ASSERT_TRUE(local.ready()) << local.ready_line();
  auto index = RunCommand("curl -s -X POST " + local.url() + "/v2/repository/index").out;
  EXPECT_THAT(index, HasSubstr("clip-small/config.yaml: remote model 'clip-image' at " + address +
                               ": input 'pixel_values' has shape"))
      << index;
  EXPECT_THAT(RunCommand("curl -s -o /dev/null -w '%{http_code}' " + local.url() +
                         "/v2/models/clip-image/ready")
                  .out,
              "200")
      << "the matching remote model serves beside it";
}

TEST(RemoteBackendTest, ADeadRemoteFailsItsRunsClearlyAndARevivedOneServesAgain) {
  const int port = testing::FreeLoopbackPort();
  std::optional<ServerProcess> remote(
      std::in_place, std::vector<std::string>{"--grpc-port", std::to_string(port)});
  ASSERT_TRUE(remote->ready()) << remote->ready_line();
  testing::TempDir dir;
  ServerProcess local({"-m", RemoteRepository(dir, "127.0.0.1:" + std::to_string(port)).string()});
  ASSERT_TRUE(local.ready()) << local.ready_line();
  ASSERT_TRUE(Succeeded(Match(local, dir, "first")));

  kill(remote->pid(), SIGKILL);
  remote.reset();
  auto [code, body] = Match(local, dir, "while the remote is down");
  EXPECT_EQ(code, 503) << "unavailable, as the remote is: " << body;
  EXPECT_THAT(body, HasSubstr("\"status\":\"failed\""));
  EXPECT_THAT(body, HasSubstr("remote model 'clip-image' at 127.0.0.1:" + std::to_string(port)));
  // The rest of the server is untouched.
  EXPECT_EQ(testing::Load(local.url() + "/v2/models/identity/infer", testing::kIdentity, 3),
            (std::vector<std::string>{"200", "200", "200"}));

  remote.emplace(std::vector<std::string>{"--grpc-port", std::to_string(port)});
  ASSERT_TRUE(remote->ready()) << remote->ready_line();
  bool revived = false;
  for (int attempt = 0; attempt < 50 && !revived; ++attempt) {
    revived = Succeeded(Match(local, dir, "after the remote came back " + std::to_string(attempt)));
    if (!revived) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(revived) << "no run succeeded once the remote was back";
}

// Decided from the remote's queue, not from timings: a backlog of
// 32-image batches keeps its clip-image queue full, and the local run's
// one image is known to wait there when the queued items (its ORCA
// report's queue_depth) are one more than a multiple of 32. The remote
// dies with that call in flight.
TEST(RemoteBackendTest, KillingTheRemoteMidRunFailsTheRunInFlightThereWithAClearError) {
  const int port = testing::FreeLoopbackPort();
  ServerProcess remote({"--grpc-port", std::to_string(port)});
  ASSERT_TRUE(remote.ready()) << remote.ready_line();
  testing::TempDir dir;
  ServerProcess local({"-m", RemoteRepository(dir, "127.0.0.1:" + std::to_string(port)).string()});
  ASSERT_TRUE(local.ready()) << local.ready_line();
  auto queued_items = [&] {
    const std::string head = RunCommand(
                                 "curl -s -o /dev/null -D - -H "
                                 "'endpoint-load-metrics-format: text' " +
                                 remote.url() + "/v2/health/ready")
                                 .out;
    std::smatch match;
    return std::regex_search(head, match, std::regex(R"(named_metrics\.queue_depth=(\d+))"))
               ? std::stoi(match[1])
               : 0;
  };
  auto wait_for = [&](const std::function<bool(int)>& ok) {
    for (int i = 0; i < 1500; ++i) {
      if (ok(queued_items())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };

  std::pair<int, std::string> run;
  {
    // Sent once: the run's image gets into the remote's queue as it drains.
    testing::Backlog backlog(remote, 4, testing::Backlog::Refill::kOnce);
    ASSERT_TRUE(wait_for([](int items) { return items >= 32; }))
        << "the backlog never queued at the remote";
    std::thread client([&] { run = Match(local, dir, "in flight when the remote died"); });
    const bool in_flight = wait_for([](int items) { return items % 32 == 1; });
    kill(remote.pid(), SIGKILL);
    client.join();
    ASSERT_TRUE(in_flight) << "the run's image never reached the remote's queue";
  }
  EXPECT_EQ(run.first, 503) << run.second;
  EXPECT_THAT(run.second, HasSubstr("\"status\":\"failed\""));
  EXPECT_THAT(run.second,
              HasSubstr("remote model 'clip-image' at 127.0.0.1:" + std::to_string(port)));
  EXPECT_EQ(testing::Load(local.url() + "/v2/models/identity/infer", testing::kIdentity, 3),
            (std::vector<std::string>{"200", "200", "200"}))
      << "the rest of the server serves on";
}

}  // namespace
}  // namespace braid
