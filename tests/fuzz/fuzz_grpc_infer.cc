// gRPC ModelInferRequest messages: protobuf decoding, then the server's
// conversion of inputs (raw contents and typed contents) to tensors.
#include "frontends/grpc/grpc_server.h"
#include "grpc_service.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto request = std::make_shared<inference::ModelInferRequest>();
  if (!request->ParseFromArray(data, static_cast<int>(size))) return 0;
  (void)braid::InputsFromProto(*request, request);
  return 0;
}
