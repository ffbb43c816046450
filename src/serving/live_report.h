// live-report: the speech of a live transcription stream and the scenes of
// a live video stream on one timeline, written out in chunks while the
// input is still arriving.
//
// Both streams count time from one origin: the audio's times are seconds
// from its first sample, and the client gives each video frame its capture
// time on the same clock ({"type":"frame","t":...}). Each stream tells the
// report how far it has settled (nothing it still sends comes before that
// time); a chunk is released once every stream the report expects has
// settled past it, and an ended stream has settled everything. So chunks
// come in time order, however far OCR lags behind speech or the reverse,
// and a scene is paired with the speech said while it was on screen.
//
// Chunks, as JSON:
//   {"type":"scene","t":s,"index":i,"text":...}   a new scene (slide, shot)
//   {"type":"speech","start":s,"end":s,"text":...,"scene":i,"scene_text":...}
//       an utterance and the scene on screen when it began (index -1 and no
//       text before the first scene)
//   {"type":"done","utterances":n,"scenes":n}     every stream has ended
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "serving/live_speech.h"
#include "serving/live_video.h"

namespace braid {

// Thread-safe.
class LiveReport {
 public:
  // Chunks a report keeps, released and waiting; past it new items are
  // dropped and counted ("dropped" in the last chunk).
  static constexpr std::size_t kMaxChunks = 10000;

  enum class Input { kSpeech, kVideo };
  // Called with each chunk, in order, under the report's lock (`last` for
  // "done"), so it must not call into the report; false when the reader has
  // gone.
  using Reader = std::function<bool(const std::string& chunk, bool last)>;

  LiveReport(std::string id, bool speech, bool video);

  const std::string& id() const { return id_; }

  // A stream joins as `input`; FailedPrecondition when the report does not
  // expect it or another stream already feeds it.
  Status Attach(Input input);
  // A stream that joined and then did not open after all.
  void Detach(Input input);
  // Every stream the report expects that has not joined counts as ended,
  // so the report finishes with the ones that did (the server is draining,
  // or nobody came).
  void Abandon();
  // A speech stream's final; partials are not part of the report.
  void Speech(const LiveEvent& event);
  void Scene(const VideoEvent& event);
  // `input` will send nothing that comes before `seconds`.
  void Settle(Input input, double seconds);
  // `input` will send nothing more.
  void End(Input input);

  // The reader gets the chunks released so far at once, then each as it is
  // released; the last is "done". Returns a ticket for Unread;
  // FailedPrecondition while another reader is attached.
  Result<std::uint64_t> Read(Reader reader);
  // The reader with `ticket` has gone; another may come.
  void Unread(std::uint64_t ticket);

  bool done() const;
  // A stream feeds it now.
  bool active() const;
  // When the report was made, and when it was done (max() until then).
  std::chrono::steady_clock::time_point created() const { return created_; }
  std::chrono::steady_clock::time_point finished() const;

 private:
  struct Stream {
    bool expected = false;
    bool attached = false;
    bool ended = false;
    double settled = 0;
  };
  struct Item {
    double time = 0;
    int order = 0;  // at one time, scenes first
    std::int64_t scene_index = -1;
    LiveEvent speech;
    std::string scene_text;
  };
  Stream& StreamFor(Input input) { return input == Input::kSpeech ? speech_ : video_; }
  // Holds `item` until it can be released (or drops it past kMaxChunks).
  void WaitLocked(Item item);
  // Moves what every stream has settled past to the chunks, in time order.
  void ReleaseLocked();
  void DeliverLocked(std::string chunk);

  const std::string id_;
  const std::chrono::steady_clock::time_point created_;
  mutable std::mutex mutex_;
  Stream speech_, video_;                                // guarded by mutex_
  std::multimap<std::pair<double, int>, Item> waiting_;  // guarded by mutex_
  std::vector<std::string> chunks_;                      // released; guarded by mutex_
  Reader reader_;                                        // guarded by mutex_
  std::uint64_t ticket_ = 0;                             // reader_'s; guarded by mutex_
  std::int64_t scene_ = -1;                              // on screen; guarded by mutex_
  std::string scene_text_;                               // guarded by mutex_
  int utterances_ = 0, scenes_ = 0;                      // guarded by mutex_
  std::size_t dropped_ = 0;                              // items past kMaxChunks; guarded by mutex_
  bool done_ = false;                                    // guarded by mutex_
  std::chrono::steady_clock::time_point finished_ =
      std::chrono::steady_clock::time_point::max();  // guarded by mutex_
};

struct LiveReportsOptions {
  std::size_t max_reports = 64;  // kept at once
  // A report this old that no stream feeds is abandoned (LiveReport::
  // Abandon); one done this long ago is forgotten.
  std::chrono::seconds keep{300};
};

// The reports by id. Thread-safe.
class LiveReports {
 public:
  explicit LiveReports(LiveReportsOptions options = {}) : options_(options) {}

  // Abandons every report: the server is draining, so no stream can join.
  void AbandonAll();

  // A new report expecting the inputs given (at least one);
  // ResourceExhausted when max_reports are kept.
  Result<std::shared_ptr<LiveReport>> Create(bool speech, bool video);
  // NotFound for an unknown or forgotten id.
  Result<std::shared_ptr<LiveReport>> Find(const std::string& id);

 private:
  void ForgetOldLocked();

  const LiveReportsOptions options_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<LiveReport>> reports_;  // guarded by mutex_
};

}  // namespace braid
