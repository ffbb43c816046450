// Live video: frames that arrive as they are captured become results on the
// capture's timeline while the video is still running.
//
// Each frame is decoded small and in gray, shrunk to a thumbnail and compared
// with the last key frame's (SceneDetector). A frame that differs enough
// starts a new scene and is a key frame: OCR (the `ocr` model, at
// interactive priority) and its CLIP embedding (Embedder, clip space) run on
// it at once, and the result carries the frame's index and capture time.
// Other frames cost a decode and a comparison, so a camera pointed at one
// slide costs almost nothing between slides. A stream's frames are handled
// one at a time: the caller gives the next only when the last is done, so a
// client that sends key frames faster than braid reads them is slowed, not
// buffered.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "preprocess/image.h"
#include "serving/embedder.h"
#include "serving/inference_service.h"
#include "serving/stream_slots.h"

namespace braid {

struct SceneDetectorOptions {
  // A frame starts a new scene when at least this share of its thumbnail's
  // pixels moved by more than `pixel_delta` gray levels from the last key
  // frame's: sensor noise and small motion move few pixels far, a new slide
  // or shot moves many.
  double threshold = 0.02;
  int pixel_delta = 32;
};

class SceneDetector {
 public:
  static constexpr int kThumbnail = 64;  // thumbnails are kThumbnail × kThumbnail

  explicit SceneDetector(SceneDetectorOptions options = {}) : options_(options) {}

  // The thumbnail of a decoded 8-bit gray frame (an area average).
  static cv::Mat Thumbnail(const cv::Mat& gray);

  struct Verdict {
    double change = 0;  // the share of pixels moved, in [0, 1]
    bool key = false;   // a new scene: the frame becomes the key frame
  };
  // Compares a frame (its thumbnail and its decoded size, which a reduced
  // JPEG decode makes smaller than the image) with the last key frame.
  // The first frame, and a frame whose size differs from the key frame's,
  // change by 1.
  Verdict Push(const cv::Mat& thumbnail, cv::Size frame_size);

 private:
  SceneDetectorOptions options_;
  cv::Mat key_;
  cv::Size key_size_;
};

// What a stream tells its client about a key frame.
struct VideoEvent {
  std::int64_t index = 0;        // the frame's number in the stream, from 0
  double time = 0;               // its capture time, seconds
  double change = 0;             // SceneDetector's share of pixels moved
  std::string text;              // what OCR read in it ("" without OCR)
  std::vector<float> embedding;  // its CLIP image embedding (empty without)
};

// What one stream runs on its key frames.
struct VideoStreamOptions {
  bool ocr = true;
  bool embed = true;
  SceneDetectorOptions scenes;
};

struct LiveVideoOptions {
  std::size_t max_streams = 8;  // open at once
  std::string ocr_model = "ocr";
  ImageLimits image;
  std::size_t threads = 0;  // the pool; 0: one per core
};

class LiveVideo;

// One stream. Push() is called one frame at a time: the next only after the
// previous one's `done`.
class VideoSession : public std::enable_shared_from_this<VideoSession> {
 public:
  using Done = std::function<void(Status)>;
  ~VideoSession();

  // Reads `image` (JPEG, PNG, WebP or BMP) captured at `time` seconds;
  // `done` runs on the pool once it is compared and, for a key frame, its
  // event emitted. An error (an image braid cannot read, a failed model)
  // ends the stream.
  void Push(std::string image, double time, Done done);

 private:
  friend class LiveVideo;
  VideoSession(LiveVideo& live, VideoStreamOptions options, std::function<void(VideoEvent)> emit);
  // OCR and the embedding of a key frame, at once; then the event.
  void Analyse(std::string image, VideoEvent event, Done done);

  LiveVideo& live_;
  const VideoStreamOptions options_;
  std::function<void(VideoEvent)> emit_;
  SceneDetector detector_;
  std::int64_t frames_ = 0;
};

class LiveVideo {
 public:
  // `service` and `embedder` (null: no embeddings) must outlive it.
  LiveVideo(InferenceService& service, Embedder* embedder, LiveVideoOptions options = {});
  ~LiveVideo();
  LiveVideo(const LiveVideo&) = delete;
  LiveVideo& operator=(const LiveVideo&) = delete;

  // A stream; `emit` runs on the pool for each key frame. NotFound when the
  // OCR or CLIP model it needs is not loaded, Unavailable when it wants
  // embeddings and there is no embedder, ResourceExhausted when max_streams
  // are open.
  Result<std::shared_ptr<VideoSession>> Open(VideoStreamOptions options,
                                             std::function<void(VideoEvent)> emit);
  // Runs the queued work and stops the pool; later work is dropped. Call
  // once the model requests and the embeddings (the workflow executor) are
  // answered.
  void Shutdown();

  // braid_live_video_* in Prometheus text: streams open, opened and
  // refused, frames read and key frames.
  void RenderMetrics(std::string& out) const;

 private:
  friend class VideoSession;
  InferenceService& service_;
  Embedder* const embedder_;
  const LiveVideoOptions options_;
  StreamSlots slots_;
  std::atomic<std::uint64_t> frames_{0};
  std::atomic<std::uint64_t> key_frames_{0};
  ThreadPool pool_;
};

}  // namespace braid
