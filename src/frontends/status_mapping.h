// The one place where a braid Status becomes a protocol status.
#pragma once

#include "core/status.h"

namespace braid {

// 400, 401, 404, 413, 429, 503, 504, 499 (client closed), 500, 501.
int HttpStatusFor(StatusCode code);

// The grpc::StatusCode value (as an int, so this header needs no gRPC).
int GrpcStatusFor(StatusCode code);

}  // namespace braid
