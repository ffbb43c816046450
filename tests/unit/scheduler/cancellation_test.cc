// CancellationSet: one call cancels every token in flight and every token
// added after it; a token whose entry is gone is left alone.
#include <gtest/gtest.h>

#include "scheduler/request.h"

namespace braid {
namespace {

TEST(CancellationSetTest, CancelAllReachesTheTokensInFlightAndThoseAddedAfter) {
  CancellationSet set;
  auto running = std::make_shared<CancellationToken>();
  auto finished = std::make_shared<CancellationToken>();
  auto entry = set.Add(running);
  { auto gone = set.Add(finished); }
  EXPECT_FALSE(running->cancelled()) << "adding cancels nothing";
  set.CancelAll();
  EXPECT_TRUE(running->cancelled());
  EXPECT_FALSE(finished->cancelled()) << "its entry was gone";
  auto late = std::make_shared<CancellationToken>();
  auto late_entry = set.Add(late);
  EXPECT_TRUE(late->cancelled()) << "added after CancelAll: cancelled at once";
}

}  // namespace
}  // namespace braid
