// The KServe v2 inference request and response bodies over HTTP: JSON
// tensors and Triton's binary tensor extension.
//
// Binary extension: the body starts with a JSON header of the length given
// by the Inference-Header-Content-Length header, followed by the raw
// little-endian bytes of each input that carries parameters.binary_data_size,
// in input order. Binary inputs are not copied: their tensors point into the
// request body, which they keep alive.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "serving/inference_service.h"

namespace braid {

struct RequestedOutput {
  std::string name;
  bool binary = false;
};

struct KserveInferRequest {
  std::string id;
  std::map<std::string, Tensor> inputs;
  InferOptions options;
  bool binary_data_output = false;       // every output binary unless listed otherwise
  std::vector<RequestedOutput> outputs;  // empty: all outputs, per binary_data_output
};

struct KserveLimits {
  std::size_t max_inputs = 256;
  std::size_t max_tensor_bytes = std::size_t{1} << 30;
  std::size_t max_json_depth = 64;
};

// Parses a request body. `header_length` is the Inference-Header-Content-Length
// value when the binary extension is used. Errors are InvalidArgument (or
// TooLarge) with a message for the client.
Result<KserveInferRequest> ParseInferRequest(std::shared_ptr<const std::string> body,
                                             std::optional<std::size_t> header_length,
                                             const KserveLimits& limits = {});

struct EncodedResponse {
  std::string body;  // the JSON
  // When binary outputs are requested: the JSON's length, and the tensors
  // whose bytes follow it, in order (sent from their own buffers).
  std::optional<std::size_t> header_length;
  std::vector<Tensor> binary;
};

// The response body: JSON, plus binary outputs when requested.
Result<EncodedResponse> EncodeInferResponse(const KserveInferRequest& request,
                                            const InferResponse& response);

// Appends the tensor's elements, comma-separated, as JSON values (numbers,
// true/false, strings; non-finite floats as null), without brackets.
void AppendTensorData(std::string& out, const Tensor& tensor);

// Appends a JSON string literal (quoted, escaped) to `out`.
void AppendJsonString(std::string& out, std::string_view text);
// `text` as a quoted, escaped JSON string.
std::string JsonQuoted(std::string_view text);

// InvalidArgument when arrays and objects in `json` nest deeper than
// `max_depth`. A linear scan that never recurses; malformed text is left
// for the parser to refuse.
Status CheckJsonDepth(std::string_view json, std::size_t max_depth);

}  // namespace braid
