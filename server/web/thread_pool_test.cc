#include "server/web/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>

#include "server/base/sync.h"

namespace amqpgw::web {
namespace {

TEST(ElasticThreadPoolTest, EveryJobGetsAThreadUpToTheMaximum) {
  ElasticThreadPool pool(/*max_threads=*/64, /*keep_idle=*/2,
                         absl::Seconds(30));
  // 50 jobs that all block until released can only finish if each has a
  // thread of its own.
  amqpgw::Notification release;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < 50; ++i) {
    pool.Enqueue([&] {
      started.fetch_add(1);
      release.WaitForNotification();
      finished.fetch_add(1);
    });
  }
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (started.load() < 50 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(started.load(), 50);
  EXPECT_EQ(pool.busy(), 50u);
  release.Notify();
  pool.Shutdown();
  EXPECT_EQ(finished.load(), 50);
  EXPECT_EQ(pool.threads(), 0u);
}

TEST(ElasticThreadPoolTest, JobsBeyondTheMaximumWaitAndRunAtShutdown) {
  ElasticThreadPool pool(/*max_threads=*/2, /*keep_idle=*/0, absl::Seconds(30));
  amqpgw::Notification release;
  std::atomic<int> finished{0};
  for (int i = 0; i < 2; ++i) {
    pool.Enqueue([&] {
      release.WaitForNotification();
      finished.fetch_add(1);
    });
  }
  for (int i = 0; i < 5; ++i) pool.Enqueue([&] { finished.fetch_add(1); });
  EXPECT_LE(pool.threads(), 2u);
  release.Notify();
  pool.Shutdown();
  EXPECT_EQ(finished.load(), 7);
}

TEST(ElasticThreadPoolTest, IdleThreadsRetire) {
  ElasticThreadPool pool(/*max_threads=*/8, /*keep_idle=*/1,
                         absl::Milliseconds(20));
  std::atomic<int> done{0};
  for (int i = 0; i < 4; ++i) pool.Enqueue([&] { done.fetch_add(1); });
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((done.load() < 4 || pool.threads() > 1) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(done.load(), 4);
  EXPECT_EQ(pool.threads(), 1u);
}

}  // namespace
}  // namespace amqpgw::web
