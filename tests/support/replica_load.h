// Load on real `braid serve` replicas, for the tests of what balances them
// (braid router, HAProxy): identity requests from curl loops, what each
// replica served (from its metrics), and a backlog of large clip-image
// batches that keeps one replica's queue full while a test looks at how
// the traffic is shared.
#pragma once

#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/command.h"
#include "support/server_process.h"
#include "support/temp_dir.h"

namespace braid::testing {

inline constexpr char kIdentity[] =
    R"({"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","data":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]})";

// Requests for `model` the replica answered with 200, from its metrics.
inline int Served(const ServerProcess& replica, const std::string& model = "identity",
                  const std::string& protocol = "http") {
  auto metrics =
      RunCommand("curl -s http://127.0.0.1:" + std::to_string(replica.metrics_port()) + "/metrics");
  std::smatch match;
  std::regex line("braid_requests_total\\{protocol=\"" + protocol + "\",model=\"" + model +
                  "\",code=\"200\"\\} (\\d+)");
  return std::regex_search(metrics.out, match, line) ? std::stoi(match[1]) : 0;
}

// Sends `count` copies of `body` to `url` from `clients` parallel curl loops;
// returns the HTTP codes, one per request.
inline std::vector<std::string> Load(const std::string& url, const std::string& body, int count,
                                     int clients = 1) {
  TempDir dir;
  auto file = dir.Write("body.json", body);
  std::string script;
  for (int c = 0; c < clients; ++c) {
    script += "( for i in $(seq " + std::to_string(count / clients) +
              "); do curl -s -o /dev/null -w '%{http_code}\\n' -X POST -H 'Content-Type: "
              "application/json' --data-binary @" +
              file.string() + " " + url + " >> " + (dir.path() / "codes").string() + "; done ) & ";
  }
  RunCommand(script + "wait");
  std::ifstream in(dir.path() / "codes");
  std::vector<std::string> codes;
  for (std::string code; in >> code;) codes.push_back(code);
  return codes;
}

// 300 identity requests to `url` from 6 curl loops; once `replica` has
// served 10 of them (or 10 s passed), `act` runs (kills it, stops it).
// Returns the HTTP codes.
inline std::vector<std::string> LoadThenAct(const std::string& url, const ServerProcess& replica,
                                            const std::function<void()>& act) {
  std::vector<std::string> codes;
  std::thread load([&] { codes = Load(url + "/v2/models/identity/infer", kIdentity, 300, 6); });
  for (int i = 0; i < 1000 && Served(replica) < 10; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  act();
  load.join();
  return codes;
}

// A clip-image request for `images` images of one colour, computed every
// time (parameters.cache=false): a slow request, which may wait its turn as
// long as a loaded machine needs (the model's own queue timeout is 2 s).
inline std::string ClipImageBatch(int images, const std::string& value) {
  std::string batch = R"({"inputs":[{"name":"pixel_values","shape":[)" + std::to_string(images) +
                      R"(,3,224,224],"datatype":"FP32","data":[)";
  for (int i = 0; i < images * 3 * 224 * 224; ++i) batch += (i ? "," : "") + value;
  return batch + R"(]}],"parameters":{"cache":false,"timeout":60000000}})";
}

// `requests` clients that each send `replica` a batch of 32 clip-image
// inputs (the binary extension, uncached); each batch waits for the one
// before it, so the replica's queue holds clip-image work, and its load is
// 1, while one of them waits. Refilled (the default), each client sends
// another batch as soon as one is answered, until the backlog is destroyed,
// so that this holds for as long as the backlog lives, however fast the
// machine computes; sent once, the queue drains and later requests get in.
// Destruction stops the clients and waits for their last answers.
class Backlog {
 public:
  enum class Refill { kUntilDestroyed, kOnce };

  explicit Backlog(const ServerProcess& replica, int requests = 6,
                   Refill refill = Refill::kUntilDestroyed)
      : replica_(replica) {
    constexpr int kImages = 32;
    const std::size_t bytes = std::size_t{kImages} * 3 * 224 * 224 * sizeof(float);
    const std::string header =
        R"({"inputs":[{"name":"pixel_values","shape":[)" + std::to_string(kImages) +
        R"(,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":)" +
        std::to_string(bytes) + R"(}}],"parameters":{"cache":false,"timeout":30000000}})";
    auto file = dir_.Write("batch.bin", header + std::string(bytes, '\0'));
    const std::string send = "curl -sf -o /dev/null -X POST -H 'Inference-Header-Content-Length: " +
                             std::to_string(header.size()) + "' --data-binary '@" + file.string() +
                             "' '" + replica.url() + "/v2/models/clip-image/infer'";
    const std::string stop = (dir_.path() / "stop").string();
    std::string script;
    for (int i = 0; i < requests; ++i) {
      script += refill == Refill::kOnce
                    ? send + " & "
                    : "while [ ! -e '" + stop + "' ]; do " + send + " || sleep 0.05; done & ";
    }
    thread_ = std::thread([script] { RunCommand(script + "wait"); });
  }
  ~Backlog() {
    dir_.Write("stop", "");
    thread_.join();
  }
  Backlog(const Backlog&) = delete;
  Backlog& operator=(const Backlog&) = delete;

  // clip-image requests waiting in the replica's queues now.
  int Queued() const {
    auto metrics =
        RunCommand("curl -s http://127.0.0.1:" + std::to_string(replica_.metrics_port()) +
                   "/metrics")
            .out;
    std::regex depth(R"(braid_queue_depth\{model="clip-image",version="1",priority="\d"\} (\d+))");
    int total = 0;
    for (std::sregex_iterator it(metrics.begin(), metrics.end(), depth), end; it != end; ++it)
      total += std::stoi((*it)[1]);
    return total;
  }

 private:
  const ServerProcess& replica_;
  TempDir dir_;
  std::thread thread_;
};

}  // namespace braid::testing
