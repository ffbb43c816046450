#include "serving/file_store.h"

#include <gtest/gtest.h>

#include "../../support/manual_clock.h"

namespace braid {
namespace {

// Issue 30: one client's uploads make room among its own files, never by
// evicting another's.
TEST(FileStoreTest, AnOwnerPastItsQuotaLosesItsOwnOldestFiles) {
  testing::ManualClock clock;
  FileStore store(clock, 1000, std::chrono::hours(1), 300);
  auto theirs = store.Put("10.0.0.1", "a.png", "image/png", std::string(200, 'a'));
  ASSERT_TRUE(theirs.ok());
  std::vector<std::string> mine;
  for (int i = 0; i < 10; ++i) {
    auto file = store.Put("10.0.0.2", "b.png", "image/png", std::string(100, 'b'));
    ASSERT_TRUE(file.ok());
    mine.push_back(file->id);
  }
  EXPECT_TRUE(store.Get(theirs->id).ok());
  // The quota of 300 bytes holds the newest three.
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(store.Get(mine[i]).ok()) << i;
  for (int i = 7; i < 10; ++i) EXPECT_TRUE(store.Get(mine[i]).ok()) << i;
  EXPECT_EQ(store.Put("10.0.0.2", "c.png", "image/png", std::string(301, 'c')).status().code(),
            StatusCode::kTooLarge);
}

TEST(FileStoreTest, TheWholeStoreStaysWithinItsBytesCountAndAge) {
  testing::ManualClock clock;
  FileStore store(clock, 1000, std::chrono::minutes(1), 1000, 3);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(store.Put("owner" + std::to_string(i), "f", "", std::string(10, 'x'))->id);
  EXPECT_FALSE(store.Get(ids[0]).ok());
  EXPECT_FALSE(store.Get(ids[1]).ok());
  EXPECT_TRUE(store.Get(ids[4]).ok());
  auto big = store.Put("other", "f", "", std::string(990, 'x'));
  ASSERT_TRUE(big.ok());
  EXPECT_FALSE(store.Get(ids[2]).ok());
  clock.Advance(std::chrono::minutes(2));
  EXPECT_FALSE(store.Get(big->id).ok());
}

}  // namespace
}  // namespace braid
