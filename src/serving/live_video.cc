#include "serving/live_video.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <thread>

namespace braid {

cv::Mat SceneDetector::Thumbnail(const cv::Mat& gray) {
  cv::Mat thumbnail;
  cv::resize(gray, thumbnail, cv::Size(kThumbnail, kThumbnail), 0, 0, cv::INTER_AREA);
  return thumbnail;
}

SceneDetector::Verdict SceneDetector::Push(const cv::Mat& thumbnail, cv::Size frame_size) {
  Verdict verdict;
  if (key_.empty() || frame_size != key_size_) {
    verdict.change = 1;
  } else {
    cv::Mat difference;
    cv::absdiff(thumbnail, key_, difference);
    verdict.change =
        double(cv::countNonZero(difference > options_.pixel_delta)) / double(difference.total());
  }
  verdict.key = verdict.change >= options_.threshold;
  if (verdict.key) {
    key_ = thumbnail.clone();
    key_size_ = frame_size;
  }
  return verdict;
}

VideoSession::VideoSession(LiveVideo& live, VideoStreamOptions options,
                           std::function<void(VideoEvent)> emit)
    : live_(live), options_(options), emit_(std::move(emit)), detector_(options.scenes) {}

VideoSession::~VideoSession() { live_.slots_.GiveBack(); }

void VideoSession::Push(std::string image, double time, Done done) {
  live_.pool_.Submit([self = shared_from_this(), image = std::move(image), time,
                      done = std::move(done)]() mutable {
    const auto bytes = std::as_bytes(std::span(image.data(), image.size()));
    auto gray = DecodeImage(bytes, self->live_.options_.image, true, SceneDetector::kThumbnail);
    if (!gray.ok()) return done(gray.status());
    ++self->live_.frames_;
    VideoEvent event;
    event.index = self->frames_++;
    event.time = time;
    const auto verdict = self->detector_.Push(SceneDetector::Thumbnail(*gray), gray->size());
    event.change = verdict.change;
    if (!verdict.key) return done(Status::Ok());
    ++self->live_.key_frames_;
    self->Analyse(std::move(image), std::move(event), std::move(done));
  });
}

void VideoSession::Analyse(std::string image, VideoEvent event, Done done) {
  // The two analyses meet here; the last to finish emits the event.
  struct Join {
    std::mutex mutex;
    int left = 0;
    VideoEvent event;  // guarded by mutex
    Status status;     // the first error; guarded by mutex
    Done done;
  };
  auto join = std::make_shared<Join>();
  join->left = int(options_.ocr) + int(options_.embed);
  join->event = std::move(event);
  join->done = std::move(done);
  if (join->left == 0) {
    emit_(std::move(join->event));
    return join->done(Status::Ok());
  }
  // Runs `fill` (under the join's lock) with a result, on the pool: model
  // callbacks may come on a model's worker, which must not do this work.
  auto arrive = [self = shared_from_this(), join](Status status, auto fill) {
    self->live_.pool_.Submit(
        [self, join, status = std::move(status), fill = std::move(fill)]() mutable {
          {
            std::lock_guard lock(join->mutex);
            if (status.ok()) {
              fill(join->event);
            } else if (join->status.ok()) {
              join->status = status;
            }
            if (--join->left > 0) return;
          }
          if (join->status.ok()) self->emit_(std::move(join->event));
          join->done(join->status);
        });
  };
  if (options_.embed) {
    live_.embedder_->EmbedAll(
        {EmbedItem{EmbedItem::Kind::kImage, image}}, EmbeddingSpace::kClip,
        [arrive](Result<std::vector<std::vector<float>>> vectors) {
          if (!vectors.ok()) {
            return arrive(
                Status(vectors.status().code(), fmt::format("the key frame's embedding failed: {}",
                                                            vectors.status().message())),
                [](VideoEvent&) {});
          }
          arrive(Status::Ok(), [vector = std::move(vectors->front())](VideoEvent& event) mutable {
            event.embedding = std::move(vector);
          });
        });
  }
  if (options_.ocr) {
    auto tensor = Tensor::FromStrings({std::move(image)}, {1});
    if (!tensor.ok()) return arrive(tensor.status(), [](VideoEvent&) {});
    std::map<std::string, Tensor> inputs;
    inputs.emplace("image", std::move(*tensor));
    InferOptions infer;
    infer.priority = 1;  // live streams are interactive
    live_.service_.Infer(
        live_.options_.ocr_model, 0, std::move(inputs), infer,
        [arrive](Result<InferResponse> result) {
          auto text = [&]() -> Result<std::string> {
            if (!result.ok()) return result.status();
            const auto& outputs = result->model->config().outputs;
            for (std::size_t o = 0; o < outputs.size(); ++o) {
              if (outputs[o].name != "text") continue;
              BRAID_ASSIGN_OR_RETURN(auto strings, result->outputs[o].Strings());
              if (!strings.empty()) return std::string(strings.front());
            }
            return Internal("the OCR model '{}' has no text output", result->model->name());
          }();
          if (!text.ok()) {
            return arrive(
                Status(text.status().code(),
                       fmt::format("OCR of the key frame failed: {}", text.status().message())),
                [](VideoEvent&) {});
          }
          arrive(Status::Ok(),
                 [text = std::move(*text)](VideoEvent& event) { event.text = std::move(text); });
        });
  }
}

LiveVideo::LiveVideo(InferenceService& service, Embedder* embedder, LiveVideoOptions options)
    : service_(service),
      embedder_(embedder),
      options_(std::move(options)),
      slots_(options_.max_streams),
      pool_(options_.threads > 0 ? options_.threads
                                 : std::max<std::size_t>(2, std::thread::hardware_concurrency())) {}

LiveVideo::~LiveVideo() { Shutdown(); }

void LiveVideo::Shutdown() { pool_.Stop(); }

Result<std::shared_ptr<VideoSession>> LiveVideo::Open(VideoStreamOptions options,
                                                      std::function<void(VideoEvent)> emit) {
  if (options.ocr) BRAID_RETURN_IF_ERROR(service_.GetModel(options_.ocr_model).status());
  if (options.embed) {
    if (embedder_ == nullptr) return Unavailable("this server embeds no images");
    BRAID_RETURN_IF_ERROR(service_.GetModel(Embedder::kClipImageModel).status());
  }
  if (!slots_.TryTake()) {
    return MakeStatus(StatusCode::kResourceExhausted,
                      "all {} live video streams are in use; retry later", options_.max_streams);
  }
  return std::shared_ptr<VideoSession>(new VideoSession(*this, options, std::move(emit)));
}

void LiveVideo::RenderMetrics(std::string& out) const {
  // A frame is counted before it is judged a key frame: read in this order,
  // `key` never passes `frames`.
  const std::uint64_t key = key_frames_.load();
  const std::uint64_t frames = frames_.load();
  fmt::format_to(std::back_inserter(out),
                 "# HELP braid_live_video_streams Live video streams open now.\n"
                 "# TYPE braid_live_video_streams gauge\n"
                 "braid_live_video_streams {}\n"
                 "# HELP braid_live_video_streams_total Live video streams asked for, by result.\n"
                 "# TYPE braid_live_video_streams_total counter\n"
                 "braid_live_video_streams_total{{result=\"opened\"}} {}\n"
                 "braid_live_video_streams_total{{result=\"refused\"}} {}\n"
                 "# HELP braid_live_video_frames_total Live video frames read, by whether they "
                 "started a scene (key frames are read by OCR and embedded).\n"
                 "# TYPE braid_live_video_frames_total counter\n"
                 "braid_live_video_frames_total{{kind=\"key\"}} {}\n"
                 "braid_live_video_frames_total{{kind=\"other\"}} {}\n",
                 slots_.open(), slots_.opened(), slots_.refused(), key, frames - key);
}

}  // namespace braid
