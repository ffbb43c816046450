#include "serving/live_report.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

namespace braid {
namespace {

using Input = LiveReport::Input;

LiveEvent Final(std::string text, double start, double end) {
  return {LiveEvent::Kind::kFinal, std::move(text), start, end, {}};
}
VideoEvent Scene(std::int64_t index, double time, std::string text) {
  VideoEvent event;
  event.index = index;
  event.time = time;
  event.text = std::move(text);
  return event;
}

// What a reader has been given: each chunk's type and its time.
struct Seen {
  std::vector<std::string> chunks;
  bool last = false;

  LiveReport::Reader Reader() {
    return [this](const std::string& chunk, bool is_last) {
      chunks.push_back(chunk);
      last = is_last;
      return true;
    };
  }
  std::vector<std::string> Summary() const {
    std::vector<std::string> out;
    for (const auto& chunk : chunks) {
      rapidjson::Document json;
      json.Parse(chunk.c_str());
      const std::string type = json["type"].GetString();
      if (type == "scene") {
        out.push_back(fmt::format("scene {} @{}", json["index"].GetInt64(), json["t"].GetDouble()));
      } else if (type == "speech") {
        out.push_back(fmt::format("speech '{}' @{} on {}", json["text"].GetString(),
                                  json["start"].GetDouble(), json["scene"].GetInt64()));
      } else {
        out.push_back(
            fmt::format("done {} {}", json["utterances"].GetInt(), json["scenes"].GetInt()));
      }
    }
    return out;
  }
};

TEST(LiveReportTest, NothingIsReleasedBeforeEveryStreamHasSettledPastIt) {
  LiveReport report("r", true, true);
  ASSERT_TRUE(report.Attach(Input::kSpeech).ok());
  ASSERT_TRUE(report.Attach(Input::kVideo).ok());
  Seen seen;
  ASSERT_TRUE(report.Read(seen.Reader()).ok());
  // Speech runs ahead of the video.
  report.Speech(Final("hello there", 0.5, 1.5));
  report.Settle(Input::kSpeech, 3.0);
  EXPECT_TRUE(seen.chunks.empty());
  report.Scene(Scene(0, 0.0, "slide one"));
  report.Settle(Input::kVideo, 0.0);
  EXPECT_EQ(seen.Summary(), (std::vector<std::string>{"scene 0 @0"}));
  report.Settle(Input::kVideo, 1.0);
  EXPECT_EQ(seen.Summary().back(), "speech 'hello there' @0.5 on 0");
  report.Scene(Scene(4, 2.0, "slide two"));
  report.Settle(Input::kVideo, 2.0);
  report.Speech(Final("and more", 3.2, 4.0));
  report.Settle(Input::kSpeech, 5.0);
  // The second utterance waits for the video to pass 3.2 or to end.
  EXPECT_EQ(seen.chunks.size(), 3u);
  report.End(Input::kVideo);
  report.End(Input::kSpeech);
  EXPECT_EQ(seen.Summary(),
            (std::vector<std::string>{"scene 0 @0", "speech 'hello there' @0.5 on 0", "scene 4 @2",
                                      "speech 'and more' @3.2 on 4", "done 2 2"}));
  EXPECT_TRUE(seen.last);
  EXPECT_TRUE(report.done());
}

TEST(LiveReportTest, AReportOfOneInputWaitsForNothingElse) {
  LiveReport report("r", true, false);
  EXPECT_EQ(report.Attach(Input::kVideo).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(report.Attach(Input::kSpeech).ok());
  EXPECT_EQ(report.Attach(Input::kSpeech).code(), StatusCode::kFailedPrecondition);
  Seen seen;
  ASSERT_TRUE(report.Read(seen.Reader()).ok());
  report.Speech(Final("hi", 0.2, 0.8));
  report.Settle(Input::kSpeech, 1.0);
  EXPECT_EQ(seen.Summary(), (std::vector<std::string>{"speech 'hi' @0.2 on -1"}));
}

TEST(LiveReportTest, ALateReaderGetsEverythingAndOneReaderAtATime) {
  LiveReport report("r", false, true);
  ASSERT_TRUE(report.Attach(Input::kVideo).ok());
  report.Scene(Scene(0, 0.0, "a"));
  report.Settle(Input::kVideo, 0.0);
  Seen first;
  auto ticket = report.Read(first.Reader());
  ASSERT_TRUE(ticket.ok());
  Seen second;
  EXPECT_EQ(report.Read(second.Reader()).status().code(), StatusCode::kFailedPrecondition);
  report.Unread(*ticket);
  report.End(Input::kVideo);
  EXPECT_EQ(first.chunks.size(), 1u);
  ASSERT_TRUE(report.Read(second.Reader()).ok());
  EXPECT_EQ(second.Summary(), (std::vector<std::string>{"scene 0 @0", "done 0 1"}));
  EXPECT_TRUE(second.last);
}

TEST(LiveReportTest, AFrameStampedBeforeTheSettledTimeIsPutThere) {
  LiveReport report("r", false, true);
  ASSERT_TRUE(report.Attach(Input::kVideo).ok());
  Seen seen;
  ASSERT_TRUE(report.Read(seen.Reader()).ok());
  report.Settle(Input::kVideo, 5.0);
  report.Scene(Scene(1, 2.0, "late"));
  report.End(Input::kVideo);
  EXPECT_EQ(seen.Summary().front(), "scene 1 @5");
}

TEST(LiveReportTest, AnAbandonedReportFinishesWithTheStreamsThatJoined) {
  LiveReport report("r", true, true);
  ASSERT_TRUE(report.Attach(Input::kSpeech).ok());
  Seen seen;
  ASSERT_TRUE(report.Read(seen.Reader()).ok());
  report.Speech(Final("anyone there", 0.1, 0.9));
  report.Settle(Input::kSpeech, 2.0);
  EXPECT_TRUE(seen.chunks.empty()) << "the video may still come";
  report.Abandon();
  EXPECT_EQ(report.Attach(Input::kVideo).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(seen.Summary(), (std::vector<std::string>{"speech 'anyone there' @0.1 on -1"}));
  report.End(Input::kSpeech);
  EXPECT_EQ(seen.Summary().back(), "done 1 0");
  EXPECT_TRUE(seen.last);
}

TEST(LiveReportTest, AStreamThatDidNotOpenMayJoinAgain) {
  LiveReport report("r", true, false);
  ASSERT_TRUE(report.Attach(Input::kSpeech).ok());
  report.Detach(Input::kSpeech);
  EXPECT_TRUE(report.Attach(Input::kSpeech).ok());
}

TEST(LiveReportsTest, ReportsAreFoundByIdAndCapped) {
  LiveReportsOptions options;
  options.max_reports = 1;
  LiveReports reports(options);
  EXPECT_EQ(reports.Create(false, false).status().code(), StatusCode::kInvalidArgument);
  auto report = reports.Create(true, true);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(reports.Find((*report)->id()).value(), *report);
  EXPECT_EQ(reports.Find("report-nosuch").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reports.Create(true, false).status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace braid
