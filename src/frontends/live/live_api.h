// GET /v1/audio/transcriptions/stream: live speech recognition over a
// WebSocket on the HTTP port, behind the API key like the other endpoints.
//
// Query: model (asr), sample_rate (16000), channels (1), encoding
// (pcm_s16le, or wav: a WAV header first, which then gives the rate and
// channels). The client sends binary frames of audio as it records and the
// text frame {"type":"end"} when done; braid sends text frames
//   {"type":"partial","text":...,"start":s,"end":s}  as words are recognised,
//   {"type":"final","text":...,"start":s,"end":s,"words":[{word,start,end}]}
//                                                    per utterance,
//   {"type":"error","error":...}                     before closing on bad input,
// and closes with 1000 after the last final. Times are seconds from the
// stream's first sample. Refusals before the handshake are JSON errors: 400
// (bad parameters, not a WebSocket), 404 (unknown model), 429 (every live
// stream in use), 503 (no voice activity model).
#pragma once

#include "frontends/http/http_server.h"
#include "preprocess/audio.h"
#include "serving/live_speech.h"

namespace braid {

struct LiveApiOptions {
  AudioLimits audio;
  WebSocketOptions socket{std::size_t{256} << 10, std::chrono::seconds(10), std::size_t{1} << 20};
};

class LiveApi {
 public:
  // `live` must outlive the API and every stream it opens.
  LiveApi(LiveSpeech& live, LiveApiOptions options = {});

  bool Handle(HttpRequest& request, HttpResponderPtr& responder);

 private:
  LiveSpeech& live_;
  LiveApiOptions options_;
};

// The JSON text frame for `event`.
std::string LiveEventJson(const LiveEvent& event);

}  // namespace braid
