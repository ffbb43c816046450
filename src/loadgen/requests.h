// The requests `braid bench` sends: KServe v2 inputs built from a model's
// metadata (random, zero, or .npy files), encoded as JSON, as the binary
// tensor extension, or as a gRPC ModelInferRequest.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "loadgen/target.h"

namespace braid {

struct InputSpec {
  std::string name;
  DataType dtype = DataType::kFp32;
  Shape shape;
};

// The inputs of a model from its KServe v2 metadata JSON (GET
// /v2/models/NAME). A leading -1 becomes `batch_size`; any other -1 must be
// given in `shapes` (input name → full shape).
Result<std::vector<InputSpec>> InputsFromMetadata(std::string_view metadata,
                                                  const std::map<std::string, Shape>& shapes,
                                                  std::int64_t batch_size);

enum class InputData { kRandom, kZero };

// `count` sets of input tensors, one per distinct request: the tensor from
// `files` where the input has one (the same in every set), otherwise random
// values (RandomTensor, seeded by the set's index) or zeros.
Result<std::vector<std::vector<Tensor>>> MakeInputSets(const std::vector<InputSpec>& specs,
                                                       const std::map<std::string, Tensor>& files,
                                                       InputData data, int count);

// The request's parameters. Without `cache` it asks the server not to
// answer from its result cache (parameters.cache = false); `priority` 0 and
// `timeout_us` -1 leave the model's defaults.
struct RequestParameters {
  bool cache = false;
  int priority = 0;
  std::int64_t timeout_us = -1;
};

HttpRequestSpec KserveJsonRequest(const std::string& model, const std::vector<InputSpec>& specs,
                                  const std::vector<Tensor>& tensors,
                                  const RequestParameters& parameters);
HttpRequestSpec KserveBinaryRequest(const std::string& model, const std::vector<InputSpec>& specs,
                                    const std::vector<Tensor>& tensors,
                                    const RequestParameters& parameters);
inference::ModelInferRequest KserveGrpcRequest(const std::string& model,
                                               const std::vector<InputSpec>& specs,
                                               const std::vector<Tensor>& tensors,
                                               const RequestParameters& parameters);

}  // namespace braid
