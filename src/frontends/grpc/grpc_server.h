// The KServe v2 GRPCInferenceService (proto/grpc_service.proto) on gRPC's
// callback API. Unary calls and ModelStreamInfer share InferenceService with
// the HTTP API; a call's deadline becomes the request's hard deadline and a
// cancelled call cancels its queued work.
//
// Live speech on ModelStreamInfer, as Triton's sequence batcher and
// decoupled models do it: requests to a model that recognises speech as it
// arrives (asr) carrying the parameter `sequence_id` (a non-zero int64 or a
// non-empty string) are pieces of one audio stream, in order. The first has
// `sequence_start: true` and may give `encoding` ("pcm_s16le" or "wav"),
// `sample_rate` and `channels`; the last has `sequence_end: true`. Each
// holds its audio bytes in the model's input (BYTES, or UINT8). braid
// answers with zero or more responses per request, each echoing
// `sequence_id` and the request's id: `event` "partial" or "final", `start`
// and `end` in seconds from the stream's start, the output `text`, and for
// finals `words` and `timings` as the model's whole-file answer has them;
// after the last request's final, a response with `sequence_end` and
// `triton_final_response` true. A request refused before it runs (its
// sequence not open, a second start, no audio bytes, every live stream in
// use) gets a response with `error_message` and its id, and an open sequence
// stays open; an error while recognising (audio braid cannot read) ends the
// sequence with a response carrying `error_message` and `sequence_id`. Once
// a sequence's end has come, its id may start a new one. Sequences belong to their call: one that
// is open when the client half-closes, or when the server drains, or that gets no audio for
// live_idle_timeout, is ended (its final is sent; when idle after an error response saying so)
// before the call ends. A request that must wait behind its sequence's earlier audio stops the
// call's reading until it can start, so a client sending faster than real time is slowed by flow
// control.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/rate_limiter.h"
#include "core/status.h"
#include "frontends/tls_files.h"
#include "metrics/metrics.h"
#include "preprocess/audio.h"
#include "serving/inference_service.h"

namespace inference {
class ModelInferRequest;
}

namespace braid {

class LiveSpeech;

// The request's inputs as tensors. Raw contents are wrapped, not copied:
// `owner` keeps the message that holds them alive. Errors are
// InvalidArgument with a message for the client. (Public for fuzzing.)
Result<std::map<std::string, Tensor>> InputsFromProto(const inference::ModelInferRequest& request,
                                                      std::shared_ptr<const void> owner);

struct GrpcServerOptions {
  std::string api_key;  // when set, calls need metadata "authorization: Bearer KEY"
  std::string admin_key;
  bool protect_health = false;  // ServerLive and ServerReady need the key too
  std::size_t max_message_bytes = std::size_t{64} << 20;
  // How hard ModelInfer answers of 1 KiB or more are compressed for a client
  // that accepts compression: 0 not at all, 1 low, 2 medium, 3 high (gRPC
  // picks the algorithm from those the client accepts). Off by default:
  // every common client accepts gzip, and tensors compress poorly for the
  // CPU it costs.
  int response_compression = 0;
  // Calls a client address may make (none: no limit); health is exempt.
  std::shared_ptr<RateLimiter> limiter;
  // A connection with no call for this long is closed; one that has not
  // finished its HTTP/2 handshake after handshake_timeout too.
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds handshake_timeout{10};
  // Memory gRPC may use for its connections and messages, all together.
  std::size_t max_memory_bytes = std::size_t{1} << 30;
  // Connections in all and from one client address (0: no limit); past
  // either a new connection is closed at once.
  std::size_t max_connections = 4096;
  std::size_t max_connections_per_address = 0;
  // What a live sequence's audio may be (rates, channels), and how long it
  // may go without a piece of audio before it is ended.
  AudioLimits live_audio;
  std::chrono::seconds live_idle_timeout{10};
  // Set: TLS only (1.2 or later), the files watched and taken again
  // within a second of a change; with a client CA, clients must show a
  // certificate it signed.
  TlsFiles tls;
};

class GrpcServer {
 public:
  // `service`, `metrics`, `clock` and `live` must outlive the server; `live`
  // (null: no live sequences) until Shutdown has returned.
  GrpcServer(InferenceService& service, Metrics& metrics, Clock& clock, LiveSpeech* live,
             GrpcServerOptions options);
  ~GrpcServer();

  // Binds host:port (0: a free port) and starts serving; returns the port.
  Result<std::uint16_t> Start(const std::string& host, std::uint16_t port);
  // Stops accepting calls (GOAWAY) and waits up to `timeout` for running ones.
  void Shutdown(Duration timeout);

 private:
  class Impl;
  friend class StreamReactor;
  std::unique_ptr<Impl> impl_;
};

}  // namespace braid
