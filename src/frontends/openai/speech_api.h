// POST /v1/audio/speech, OpenAI's text-to-speech shape: {model, input,
// voice, response_format, speed}. The text is split into sentences; each
// is synthesised by the `tts` model (flite) through its scheduler, a few
// at a time, and its audio is sent as soon as it and every sentence before
// it are ready, so playback can start before the rest is spoken. Audio is
// mono at 24 kHz, as OpenAI's: wav (streamed, sizes unknown), raw 16-bit
// little-endian pcm, or mp3.
#pragma once

#include <string>
#include <vector>

#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "serving/inference_service.h"

namespace braid {

// The text in speakable pieces: sentences (ending at . ! ? ; or a line
// break), a long one cut at a space near `max_chars`.
std::vector<std::string> SplitSentences(std::string_view text, std::size_t max_chars = 300);

class SpeechApi {
 public:
  static constexpr int kRate = 24000;
  static constexpr std::size_t kMaxInputChars = 4096;

  // `service` must outlive the API.
  explicit SpeechApi(InferenceService& service);

  // Adds POST /v1/audio/speech to `routes`.
  void AddRoutes(RouteTable& routes);

 private:
  void Speak(HttpRequest& request, HttpResponderPtr responder);

  InferenceService& service_;
};

}  // namespace braid
