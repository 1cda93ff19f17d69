#include "server/grpc/delivery_stream_writes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace amqpgw::grpc_api {
namespace {

using core::AckMode;

// A model of one stream as DeliveryStream drives it (one write at a time,
// each carrying the deliveries queued, up to max_batch; max_batch 0: one
// each) over a model of gRPC's transport: a hinted write's bytes wait in
// gRPC's buffer, any other write sends the buffer and its own bytes to the
// socket. It records every write and what each completion let AUTO ack.
class StreamModel {
 public:
  StreamModel(AckMode mode, uint32_t prefetch, uint32_t max_batch)
      : mode_(mode), prefetch_(prefetch), max_batch_(max_batch) {}

  // Deliveries arrive (queued behind whatever waits).
  void Arrive(int n) {
    for (int i = 0; i < n; ++i) queue_.push_back(++next_id_);
  }
  void Event() { queue_.push_back(0); }

  // Starts the next write when none is in flight and something waits;
  // returns whether it did.
  bool StartWrite() {
    if (in_flight_ || queue_.empty()) return false;
    std::vector<uint64_t> carried;
    uint64_t first = queue_.front();
    queue_.pop_front();
    carried.push_back(first);
    if (first != 0 && max_batch_ > 0) {
      while (!queue_.empty() && queue_.front() != 0 &&
             carried.size() < max_batch_) {
        carried.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    uint64_t last = first == 0 ? 0 : carried.back();
    DeliveryWrites::Flush flush =
        writes_.Start(mode_, prefetch_, last, !queue_.empty());
    ++writes_started_;
    if (flush.write_through) ++written_through_;
    EXPECT_FALSE(flush.write_through && flush.buffer_hint);
    for (uint64_t id : carried) {
      if (id != 0) grpc_buffer_.push_back(id);
    }
    if (!flush.buffer_hint) {  // sent now: the buffer with it
      for (uint64_t id : grpc_buffer_) on_socket_.push_back(id);
      grpc_buffer_.clear();
    }
    in_flight_ = true;
    return true;
  }

  // The write in flight completes.
  void CompleteWrite(bool ok = true) {
    ASSERT_TRUE(in_flight_);
    in_flight_ = false;
    uint64_t upto = writes_.Done(ok);
    if (upto == 0) return;
    // Acked only once written to the socket: every id up to `upto`.
    for (uint64_t id = acked_ + 1; id <= upto; ++id) {
      EXPECT_NE(std::find(on_socket_.begin(), on_socket_.end(), id),
                on_socket_.end())
          << "delivery " << id << " acked before its bytes were sent";
    }
    EXPECT_GT(upto, acked_);
    acked_ = std::max(acked_, upto);
    acks_.push_back(upto);
  }

  // Completes the write in flight, then writes until the queue is empty.
  void DrainQueue() {
    if (in_flight_) CompleteWrite();
    while (StartWrite()) CompleteWrite();
  }

  bool in_flight() const { return in_flight_; }
  int writes_started() const { return writes_started_; }
  int written_through() const { return written_through_; }
  uint64_t acked() const { return acked_; }
  const std::vector<uint64_t>& acks() const { return acks_; }
  uint64_t last_id() const { return next_id_; }

 private:
  const AckMode mode_;
  const uint32_t prefetch_;
  const uint32_t max_batch_;
  DeliveryWrites writes_;
  std::deque<uint64_t> queue_;  // delivery ids; 0 is an event
  uint64_t next_id_ = 0;
  bool in_flight_ = false;
  std::vector<uint64_t> grpc_buffer_;
  std::vector<uint64_t> on_socket_;
  int writes_started_ = 0;
  int written_through_ = 0;
  uint64_t acked_ = 0;
  std::vector<uint64_t> acks_;
};

TEST(DeliveryWritesTest, MaxHintedRunIsAQuarterOfThePrefetchWithinBounds) {
  EXPECT_EQ(DeliveryWrites::MaxHintedRun(0), 1u);
  EXPECT_EQ(DeliveryWrites::MaxHintedRun(1), 1u);
  EXPECT_EQ(DeliveryWrites::MaxHintedRun(10), 2u);
  EXPECT_EQ(DeliveryWrites::MaxHintedRun(100), 25u);
  EXPECT_EQ(DeliveryWrites::MaxHintedRun(1000), DeliveryWrites::kMaxHintedRun);
}

TEST(DeliveryWritesTest, AutoBurstIsOneWriteEachButOneFlushAndOneAck) {
  // StreamMessages without max_batch: one delivery per response (the
  // proto's shape), so ten writes; only the last is written through, and
  // its completion acks all ten, none before.
  StreamModel m(AckMode::kAuto, 1000, 0);
  m.Arrive(10);
  for (int i = 1; i <= 9; ++i) {
    ASSERT_TRUE(m.StartWrite());
    m.CompleteWrite();
    EXPECT_EQ(m.acked(), 0u) << "after hinted write " << i;
  }
  ASSERT_TRUE(m.StartWrite());
  EXPECT_EQ(m.acked(), 0u);  // not before the write completes
  m.CompleteWrite();
  EXPECT_EQ(m.writes_started(), 10);
  EXPECT_EQ(m.written_through(), 1);
  EXPECT_EQ(m.acks(), std::vector<uint64_t>({10}));
}

TEST(DeliveryWritesTest, AutoLongBurstIsWrittenThroughEveryRun) {
  // prefetch 1000: runs of 64 hinted writes, then one written through.
  StreamModel m(AckMode::kAuto, 1000, 0);
  m.Arrive(200);
  m.DrainQueue();
  EXPECT_EQ(m.writes_started(), 200);
  EXPECT_EQ(m.written_through(), 4);
  EXPECT_EQ(m.acks(), std::vector<uint64_t>({65, 130, 195, 200}));
}

TEST(DeliveryWritesTest, AutoLoneDeliveryIsWrittenThroughAndAckedAtOnce) {
  StreamModel m(AckMode::kAuto, 100, 0);
  for (int i = 1; i <= 3; ++i) {
    m.Arrive(1);
    ASSERT_TRUE(m.StartWrite());
    m.CompleteWrite();
    EXPECT_EQ(m.acked(), static_cast<uint64_t>(i));
  }
  EXPECT_EQ(m.writes_started(), 3);
  EXPECT_EQ(m.written_through(), 3);
}

TEST(DeliveryWritesTest, AutoBatchesCoalesceWhatWaitsIntoOneWrite) {
  // max_batch 256: 300 deliveries waiting leave in two writes (256 + 44);
  // deliveries arriving while a write is in flight go together in the next.
  StreamModel m(AckMode::kAuto, 1000, 256);
  m.Arrive(300);
  ASSERT_TRUE(m.StartWrite());
  m.Arrive(5);  // while the first write is in flight
  m.CompleteWrite();
  EXPECT_EQ(m.acked(), 0u);  // hinted: more was queued behind it
  m.DrainQueue();
  EXPECT_EQ(m.writes_started(), 2);
  EXPECT_EQ(m.written_through(), 1);
  EXPECT_EQ(m.acked(), 305u);
}

TEST(DeliveryWritesTest, AutoEventEndingARunAcksTheRunBeforeIt) {
  StreamModel m(AckMode::kAuto, 1000, 0);
  m.Arrive(3);
  m.Event();  // e.g. a status event queued behind the deliveries
  m.DrainQueue();
  EXPECT_EQ(m.writes_started(), 4);
  EXPECT_EQ(m.written_through(), 1);
  EXPECT_EQ(m.acks(), std::vector<uint64_t>({3}));
}

TEST(DeliveryWritesTest, AutoFailedWriteAcksNothing) {
  StreamModel m(AckMode::kAuto, 1000, 0);
  m.Arrive(3);
  ASSERT_TRUE(m.StartWrite());
  m.CompleteWrite();
  ASSERT_TRUE(m.StartWrite());
  m.CompleteWrite();
  ASSERT_TRUE(m.StartWrite());  // written through
  m.CompleteWrite(/*ok=*/false);
  EXPECT_EQ(m.acked(), 0u);
  EXPECT_TRUE(m.acks().empty());
}

TEST(DeliveryWritesTest, ClientAndNoneHintBurstsAndAckNothingOnCompletion) {
  for (AckMode mode : {AckMode::kClient, AckMode::kNone}) {
    StreamModel m(mode, 1000, 0);
    m.Arrive(10);
    m.DrainQueue();
    EXPECT_EQ(m.writes_started(), 10);
    EXPECT_EQ(m.written_through(), 0);
    EXPECT_TRUE(m.acks().empty());
  }
}

TEST(DeliveryWritesTest, AutoAcksOnlyWhatReachedTheSocketUnderRandomArrivals) {
  // Deliveries arrive at random while writes are in flight; StreamModel
  // checks at every ack that each acked id was sent. In the end everything
  // is acked (the last write of a burst is always written through).
  for (uint32_t prefetch : {1u, 10u, 1000u}) {
    for (uint32_t max_batch : {0u, 1u, 7u}) {
      std::mt19937 random(prefetch * 31 + max_batch);
      StreamModel m(AckMode::kAuto, prefetch, max_batch);
      for (int step = 0; step < 2000; ++step) {
        switch (random() % 4) {
          case 0:
            m.Arrive(static_cast<int>(random() % 5));
            break;
          case 1:
            m.StartWrite();
            break;
          case 2:
            if (m.in_flight()) m.CompleteWrite();
            break;
          default:
            if (random() % 8 == 0) m.Event();
            break;
        }
      }
      m.DrainQueue();
      EXPECT_EQ(m.acked(), m.last_id())
          << "prefetch " << prefetch << " max_batch " << max_batch;
    }
  }
}

}  // namespace
}  // namespace amqpgw::grpc_api
