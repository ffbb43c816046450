#include "core/gate.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace braid {
namespace {

using std::chrono::steady_clock;

TEST(GateTest, RefusesEntryOnceClosedButKeepsHoldersOut) {
  Gate gate;
  auto first = gate.TryEnter();
  ASSERT_TRUE(first.has_value());
  gate.Close();
  EXPECT_FALSE(gate.TryEnter().has_value());
  EXPECT_EQ(gate.in_flight(), 1u);
  EXPECT_FALSE(gate.Wait(steady_clock::now()));
  first.reset();
  EXPECT_EQ(gate.in_flight(), 0u);
  EXPECT_TRUE(gate.Wait(steady_clock::now()));
}

TEST(GateTest, MovedHolderLeavesOnce) {
  Gate gate;
  auto holder = gate.TryEnter();
  Gate::Holder moved = std::move(*holder);
  holder.reset();
  EXPECT_EQ(gate.in_flight(), 1u);
  Gate::Holder other = *gate.TryEnter();
  EXPECT_EQ(gate.in_flight(), 2u);
  other = std::move(moved);
  EXPECT_EQ(gate.in_flight(), 1u);
}

TEST(GateTest, WaitReturnsWhenTheLastHolderLeavesOnAnotherThread) {
  Gate gate;
  std::vector<std::thread> workers;
  for (int i = 0; i < 8; ++i) {
    workers.emplace_back([holder = std::make_shared<Gate::Holder>(*gate.TryEnter())] {});
  }
  gate.Close();
  EXPECT_TRUE(gate.Wait());
  EXPECT_EQ(gate.in_flight(), 0u);
  for (auto& worker : workers) worker.join();
}

}  // namespace
}  // namespace braid
