// The remote backend (`backend: remote`): a model of the repository served
// by another KServe v2 server (another braid, or Triton) over gRPC, so
// that a workflow's heavy node can run on a GPU host while the rest stays
// local. Its config declares the inputs and outputs as for any model, and:
//
//   parameters:
//     addresses: gpu-1:8001,gpu-2:8001  # KServe v2 gRPC endpoints (required)
//     remote_model: clip-image          # the model's name there (default: this one's)
//     remote_version: ""                # default: the server's choice
//     timeout_ms: 30000                 # deadline of one call
//     eject_ms: 5000                    # an address that failed is skipped this long
//     health_ms: 1000                   # ModelReady asked of every address this often (0: never)
//
// At load it fetches the remote model's metadata from the first address
// that answers and checks every declared input and output against it
// (name, datatype, shape with the batch dimension); a mismatch or no answer
// fails the load with the config file named. Each instance is one call in
// flight (instance_group.count calls at once), over one channel per
// address shared by the instances. A call that finds its address
// unavailable (connection refused, reset, UNAVAILABLE) ejects that address
// for eject_ms (a circuit breaker: the first call after it is the probe) and
// is retried on the next address; with every address ejected the least
// recently ejected one is tried anyway. Other errors come back as they are.
// A health check (ModelReady, every health_ms on a thread of its own)
// ejects an address whose model is not ready and brings an ejected one back
// as soon as it is.
// The call's deadline is the batch's (the latest of its requests'), or
// timeout_ms when that is nearer. Remote instances take no lease of the
// local compute budget: their work runs elsewhere.
#pragma once

#include "model/backend.h"

namespace braid {

inline constexpr char kRemoteBackend[] = "remote";

BackendFactory MakeRemoteBackend();

}  // namespace braid
