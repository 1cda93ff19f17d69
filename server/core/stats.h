// Counters shared by the whole session (lock-free; any thread).
#ifndef AMQPGW_SERVER_CORE_STATS_H_
#define AMQPGW_SERVER_CORE_STATS_H_

#include <atomic>
#include <cstdint>

namespace amqpgw::core {

struct CountersSnapshot {
  uint64_t published = 0;
  uint64_t confirmed = 0;
  uint64_t nacked = 0;
  uint64_t returned = 0;
  uint64_t delivered = 0;
  uint64_t acked = 0;
  uint64_t requeued = 0;
  uint64_t rejected = 0;
  uint64_t unconfirmed = 0;
  uint64_t active_streams = 0;
  uint64_t reconnects = 0;
  // Message body bytes accepted for publishing / delivered to streams.
  uint64_t published_bytes = 0;
  uint64_t delivered_bytes = 0;
};

struct Stats {
  std::atomic<uint64_t> published{0};
  std::atomic<uint64_t> confirmed{0};
  std::atomic<uint64_t> nacked{0};
  std::atomic<uint64_t> returned{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> acked{0};
  std::atomic<uint64_t> requeued{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<int64_t> unconfirmed{0};
  std::atomic<int64_t> active_streams{0};
  std::atomic<uint64_t> reconnects{0};
  std::atomic<uint64_t> published_bytes{0};
  std::atomic<uint64_t> delivered_bytes{0};

  CountersSnapshot Snapshot() const {
    CountersSnapshot s;
    s.published = published.load(std::memory_order_relaxed);
    s.confirmed = confirmed.load(std::memory_order_relaxed);
    s.nacked = nacked.load(std::memory_order_relaxed);
    s.returned = returned.load(std::memory_order_relaxed);
    s.delivered = delivered.load(std::memory_order_relaxed);
    s.acked = acked.load(std::memory_order_relaxed);
    s.requeued = requeued.load(std::memory_order_relaxed);
    s.rejected = rejected.load(std::memory_order_relaxed);
    int64_t u = unconfirmed.load(std::memory_order_relaxed);
    s.unconfirmed = u > 0 ? static_cast<uint64_t>(u) : 0;
    int64_t a = active_streams.load(std::memory_order_relaxed);
    s.active_streams = a > 0 ? static_cast<uint64_t>(a) : 0;
    s.reconnects = reconnects.load(std::memory_order_relaxed);
    s.published_bytes = published_bytes.load(std::memory_order_relaxed);
    s.delivered_bytes = delivered_bytes.load(std::memory_order_relaxed);
    return s;
  }
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_STATS_H_
