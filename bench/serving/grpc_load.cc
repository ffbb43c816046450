// bench_grpc_load: a closed-loop KServe v2 gRPC load generator for
// bench/serving: `concurrency` threads, each with its own channel, sending
// ModelInfer with raw tensors and waiting for the answer. Prints one line:
// "requests=N seconds=S rps=R p50_us=A p99_us=B errors=E".
#include <fmt/core.h>
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "grpc_service.grpc.pb.h"

int main(int argc, char** argv) {
  CLI::App app{"bench_grpc_load: closed-loop ModelInfer load"};
  std::string target = "127.0.0.1:8001";
  std::string model = "identity";
  std::string input = "input";
  std::vector<std::int64_t> shape = {1, 16};
  int concurrency = 1;
  double seconds = 5;
  app.add_option("--target", target, "host:port of the gRPC server");
  app.add_option("--model", model, "Model name");
  app.add_option("--input", input, "Input name (FP32)");
  app.add_option("--shape", shape, "Input shape");
  app.add_option("--concurrency", concurrency, "Client threads");
  app.add_option("--seconds", seconds, "Measuring time (after 0.5 s of warm-up)");
  CLI11_PARSE(app, argc, argv);

  std::int64_t count = 1;
  for (auto d : shape) count *= d;
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* tensor = request.add_inputs();
  tensor->set_name(input);
  tensor->set_datatype("FP32");
  for (auto d : shape) tensor->add_shape(d);
  request.add_raw_input_contents(std::string(count * sizeof(float), '\0'));

  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<long> errors{0};
  std::vector<std::vector<double>> latencies(concurrency);
  std::vector<std::thread> threads;
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(64 << 20);
      args.SetInt("grpc.use_local_subchannel_pool", 1);  // one connection per thread
      auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
      auto stub = inference::GRPCInferenceService::NewStub(channel);
      inference::ModelInferResponse response;
      while (!stop) {
        grpc::ClientContext context;
        auto begin = std::chrono::steady_clock::now();
        grpc::Status status = stub->ModelInfer(&context, request, &response);
        double us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - begin)
                .count();
        if (!status.ok()) ++errors;
        if (measuring && status.ok()) latencies[c].push_back(us);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  measuring = true;
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, std::size_t(p * all.size()))];
  };
  fmt::print("requests={} seconds={:.2f} rps={:.1f} p50_us={:.1f} p99_us={:.1f} errors={}\n",
             all.size(), elapsed, all.size() / elapsed, pct(0.5), pct(0.99), errors.load());
  return 0;
}
