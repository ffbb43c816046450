#include <gtest/gtest.h>

#include "serving/live_speech.h"

namespace braid {
namespace {

using Event = Endpointer::Event;

TEST(EndpointerTest, SpeechStartsAtOnceAndEndsAfterEnoughSilence) {
  EndpointerOptions options;
  options.end_silence_windows = 3;
  Endpointer endpointer(options);
  EXPECT_EQ(endpointer.Push(0.1f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.6f), Event::kStart);
  EXPECT_TRUE(endpointer.in_speech());
  // Between the thresholds is neither: it neither starts nor counts as
  // silence.
  EXPECT_EQ(endpointer.Push(0.4f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.1f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.1f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.9f), Event::kNone);  // a pause shorter than 3 windows
  EXPECT_EQ(endpointer.Push(0.1f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.2f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.3f), Event::kEnd);
  EXPECT_FALSE(endpointer.in_speech());
  EXPECT_EQ(endpointer.Push(0.45f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.5f), Event::kStart);
}

TEST(EndpointerTest, AnUtteranceWithoutAPauseIsCutAtItsLongest) {
  EndpointerOptions options;
  options.max_utterance_windows = 4;
  Endpointer endpointer(options);
  EXPECT_EQ(endpointer.Push(0.9f), Event::kStart);
  EXPECT_EQ(endpointer.Push(0.9f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.9f), Event::kNone);
  EXPECT_EQ(endpointer.Push(0.9f), Event::kEnd);
  EXPECT_EQ(endpointer.Push(0.9f), Event::kStart);
}

}  // namespace
}  // namespace braid
