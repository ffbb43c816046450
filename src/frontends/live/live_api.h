// Live input over WebSockets on the HTTP port, behind the API key like the
// other endpoints.
//
// GET /v1/audio/transcriptions/stream: live speech recognition.
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
//
// GET /v1/video/stream: live video. Query: fps (1; frames without a stated
// time are index / fps seconds in), ocr and embed (true: what runs on key
// frames), scene_threshold (0.02: SceneDetectorOptions). The client sends
// each frame as a binary frame holding a JPEG, PNG, WebP or BMP image,
// optionally after the text frame {"type":"frame","t":SECONDS} giving its
// capture time, and {"type":"end"} when done; braid sends, for each frame
// that starts a new scene,
//   {"type":"scene","index":i,"t":s,"change":c,"text":...,"embedding":[...]}
// (what OCR read in it and its CLIP embedding), {"type":"error",...} before
// closing on bad input, and closes with 1000 after the last frame. Refusals
// as above (404 when the OCR or CLIP model is not loaded).
//
// live-report (serving/live_report.h): POST /v1/live/reports (body
// optional: {"speech":true,"video":true}) makes a report and answers 201
// {"id","speech_url","video_url","events_url"}; the two streams join it by
// opening their WebSockets with report=ID, and GET /v1/live/reports/ID/events
// sends its chunks as server-sent events (data: JSON) as they are released,
// the chunks so far first, ending after {"type":"done"}. 404 for an unknown
// report, 409 for a second stream of one kind or a second reader, 429 past
// the reports kept.
#pragma once

#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "preprocess/audio.h"
#include "serving/live_report.h"
#include "serving/live_speech.h"
#include "serving/live_video.h"

namespace braid {

struct LiveApiOptions {
  AudioLimits audio;
  WebSocketOptions socket{std::size_t{256} << 10, std::chrono::seconds(10), std::size_t{1} << 20};
  // A video frame may be a whole photo.
  WebSocketOptions video_socket{std::size_t{16} << 20, std::chrono::seconds(10),
                                std::size_t{4} << 20};
};

class LiveApi {
 public:
  // `speech`, `video` and `reports` must outlive the API and every stream
  // it opens.
  LiveApi(LiveSpeech& speech, LiveVideo& video, LiveReports& reports, LiveApiOptions options = {});

  // Adds the WebSocket streams and the live reports' endpoints to `routes`.
  void AddRoutes(RouteTable& routes);

 private:
  // GET /v1/audio/transcriptions/stream (`speech`) or /v1/video/stream.
  void OpenStream(bool speech, HttpRequest& request, const HttpResponderPtr& responder);
  void MakeReport(HttpRequest& request, const HttpResponderPtr& responder);
  void ReadReport(const std::string& id, const HttpResponderPtr& responder);

  LiveSpeech& speech_;
  LiveVideo& video_;
  LiveReports& reports_;
  LiveApiOptions options_;
};

// The JSON text frames for `event`.
std::string LiveEventJson(const LiveEvent& event);
std::string VideoEventJson(const VideoEvent& event);

}  // namespace braid
