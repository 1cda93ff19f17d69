#include "server/core/connection_worker.h"

#include <gtest/gtest.h>

#include "absl/time/time.h"

namespace amqpgw::core {
namespace {

constexpr absl::Duration kPause = absl::Milliseconds(2);
constexpr int kMany = ConnectionWorker::kReadPauseMinEvents;

TEST(ReadPauseAfterTest, FewEventsAreNotFollowedByAPause) {
  // A prefetch-1 stream sees one delivery per read: it must never wait.
  for (int events = 0; events < kMany; ++events) {
    EXPECT_EQ(ConnectionWorker::ReadPauseAfter(events, 1000, kPause),
              absl::ZeroDuration())
        << events;
  }
}

TEST(ReadPauseAfterTest, ABusyReadWithALargeWindowGetsTheConfiguredPause) {
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(kMany, 1000, kPause), kPause);
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(2048, 65535, kPause), kPause);
}

TEST(ReadPauseAfterTest, SmallWindowsShortenThePause) {
  // Prefetch 20: the broker may send only 20 more during the pause, so the
  // pause must be short enough not to leave it waiting for acks.
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(kMany, 20, kPause),
            20 * ConnectionWorker::kReadPausePerWindowMessage);
  EXPECT_LT(ConnectionWorker::ReadPauseAfter(kMany, 20, kPause),
            absl::Microseconds(100));
  // Two streams of 100 on one connection: their windows add up.
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(kMany, 200, kPause),
            absl::Microseconds(400));
}

TEST(ReadPauseAfterTest, NoWindowOrNoPauseNeverPauses) {
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(2048, 0, kPause),
            absl::ZeroDuration());
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(2048, 1000, absl::ZeroDuration()),
            absl::ZeroDuration());
}

}  // namespace
}  // namespace amqpgw::core
