#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "frontends/http/connection.h"

namespace braid::http_internal {
namespace {

namespace net = boost::asio;

TEST(NetworkContextsTest, HandsOutItsContextsInTurnEachRunByOneThread) {
  NetworkContexts network(3);
  network.Start();
  struct Ran {
    net::io_context* posted_to;
    net::io_context* of_this_thread;
    std::thread::id thread;
  };
  std::vector<std::future<Ran>> ran;
  for (int i = 0; i < 6; ++i) {
    net::io_context& context = network.Next();
    auto done = std::make_shared<std::promise<Ran>>();
    ran.push_back(done->get_future());
    net::post(context, [&network, &context, done] {
      done->set_value({&context, &network.OfThisThread(), std::this_thread::get_id()});
    });
  }
  std::vector<Ran> results;
  for (auto& future : ran) results.push_back(future.get());
  std::set<net::io_context*> contexts;
  std::set<std::thread::id> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].of_this_thread, results[i].posted_to) << i;
    EXPECT_EQ(results[i].posted_to, results[i % 3].posted_to) << i;
    EXPECT_EQ(results[i].thread, results[i % 3].thread) << i;
    contexts.insert(results[i].posted_to);
    threads.insert(results[i].thread);
  }
  EXPECT_EQ(contexts.size(), 3u);
  EXPECT_EQ(threads.size(), 3u);
  // From a thread that runs none of them: the first.
  EXPECT_EQ(&network.OfThisThread(), &network.first());
  EXPECT_EQ(&network.first(), results[0].posted_to);
}

// A thread that polls after its last event (HttpServerOptions::busy_poll)
// still runs what other threads post, whether it is polling or asleep, and
// stops when asked, even while it polls.
TEST(NetworkContextsTest, APollingThreadRunsWhatIsPostedAndStops) {
  NetworkContexts network(1, std::chrono::seconds(1));
  network.Start();
  for (int i = 0; i < 3; ++i) {
    std::promise<std::thread::id> ran;
    net::post(network.Next(), [&ran] { ran.set_value(std::this_thread::get_id()); });
    EXPECT_NE(ran.get_future().get(), std::this_thread::get_id());
  }
  network.Stop();
  EXPECT_FALSE(network.running());
}

// The window starts at the most, covers the short lulls a thread slept
// through (with a quarter to spare, never past the most) and halves after a
// lull longer than the most.
TEST(PollWindowTest, FitsTheShortLullsAndHalvesAfterALongOne) {
  using std::chrono::microseconds;
  PollWindow poll(microseconds(400));
  EXPECT_EQ(poll.window(), microseconds(400));
  poll.Ended(microseconds(1000));
  EXPECT_EQ(poll.window(), microseconds(200));
  poll.Ended(microseconds(5000));
  EXPECT_EQ(poll.window(), microseconds(100));
  poll.Ended(microseconds(40));  // caught by the window: it stays
  EXPECT_EQ(poll.window(), microseconds(100));
  poll.Ended(microseconds(160));  // slept through: widened to cover it
  EXPECT_EQ(poll.window(), microseconds(200));
  poll.Ended(microseconds(360));
  EXPECT_EQ(poll.window(), microseconds(400));  // not past the most
  for (int i = 0; i < 40; ++i) poll.Ended(std::chrono::seconds(1));
  EXPECT_EQ(poll.window(), microseconds(0));
  poll.Ended(microseconds(80));
  EXPECT_EQ(poll.window(), microseconds(100));
}

// A handler still pending on one context may hold a connection whose socket
// lives on another: destroying the contexts must not free the other's
// services while that socket still refers to them (AddressSanitizer sees
// the use after free if the contexts are destroyed one by one).
TEST(NetworkContextsTest, DestroysHandlersThatHoldSocketsOfAnotherContext) {
  auto network = std::make_unique<NetworkContexts>(2);
  net::io_context& first = network->Next();
  net::io_context& second = network->Next();
  ASSERT_NE(&first, &second);
  auto socket = std::make_shared<net::ip::tcp::socket>(first);
  socket->open(net::ip::tcp::v4());
  net::post(second, [socket] {});  // never run: no thread was started
  socket.reset();
  network.reset();
}

}  // namespace
}  // namespace braid::http_internal
