// bench/serving/grpc_floor: the gRPC ceiling for run.sh, as nginx's static
// 200 is the HTTP one. A bare grpc++ server (the library and version braid
// serves gRPC with, on its callback API) whose ModelInfer answers each
// request with its own raw inputs as outputs: no model, no scheduler, no
// validation. What braid's gRPC latency adds to this is braid's own cost.
//   bench_grpc_floor [--port N]     prints "ready grpc=127.0.0.1:PORT"
#include <fmt/core.h>
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "grpc_service.grpc.pb.h"

namespace {

class EchoService final : public inference::GRPCInferenceService::CallbackService {
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    response->set_model_name(request->model_name());
    response->set_id(request->id());
    for (int i = 0; i < request->inputs_size(); ++i) {
      auto* output = response->add_outputs();
      output->set_name(request->inputs(i).name());
      output->set_datatype(request->inputs(i).datatype());
      *output->mutable_shape() = request->inputs(i).shape();
    }
    *response->mutable_raw_output_contents() = request->raw_input_contents();
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A bare grpc++ ModelInfer that echoes its inputs: the gRPC ceiling"};
  int port = 0;
  app.add_option("--port", port, "port on 127.0.0.1 (0: a free one)");
  CLI11_PARSE(app, argc, argv);
  EchoService service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(fmt::format("127.0.0.1:{}", port), grpc::InsecureServerCredentials(),
                           &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    fmt::print(stderr, "bench_grpc_floor: cannot listen\n");
    return 1;
  }
  fmt::print("ready grpc=127.0.0.1:{}\n", port);
  std::fflush(stdout);
  server->Wait();
}
