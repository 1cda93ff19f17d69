// The session's counters, declared once (lock-free; any thread).
//
// Every counter is one row of AMQPGW_COUNTERS: X(name, Kind, metric, help)
//   name    the field of Stats and CountersSnapshot, and of the API's
//           Counters message (proto/amqpgw/v1/gateway.proto) for the rows
//           of AMQPGW_API_COUNTERS; grpc/convert.cc copies those by name
//   Kind    Counter (only grows) or Gauge (a level now)
//   metric  the Prometheus family --metrics_listen serves
//           (daemon/operations.cc writes one per row)
//   help    its help text
// A new counter is one new row (and, for the API, a field of the proto's
// Counters message with the same name; convert_test checks they agree).
#ifndef AMQPGW_SERVER_CORE_STATS_H_
#define AMQPGW_SERVER_CORE_STATS_H_

#include <atomic>
#include <cstdint>

#include "server/metrics/latency_histogram.h"

// Counters the API's GetStatus returns (the Counters message).
#define AMQPGW_API_COUNTERS(X)                                             \
  X(published, Counter, "amqpgw_messages_published_total",                 \
    "Messages accepted for publishing (Publish and PublishBatch).")        \
  X(confirmed, Counter, "amqpgw_messages_confirmed_total",                 \
    "Messages the broker confirmed (basic.ack).")                          \
  X(nacked, Counter, "amqpgw_messages_nacked_total",                       \
    "Messages the broker refused (basic.nack).")                           \
  X(returned, Counter, "amqpgw_messages_returned_total",                   \
    "Mandatory messages the broker returned unroutable (basic.return).")   \
  X(unconfirmed, Gauge, "amqpgw_messages_unconfirmed",                     \
    "Messages sent to the broker and not yet confirmed.")                  \
  X(delivered, Counter, "amqpgw_deliveries_total",                         \
    "Messages delivered to streams.")                                      \
  X(acked, Counter, "amqpgw_deliveries_acked_total",                       \
    "Deliveries acknowledged to the broker (AUTO, NONE and client ACKs).") \
  X(requeued, Counter, "amqpgw_deliveries_requeued_total",                 \
    "Deliveries requeued by Ack REQUEUE.")                                 \
  X(rejected, Counter, "amqpgw_deliveries_rejected_total",                 \
    "Deliveries rejected by Ack REJECT.")                                  \
  X(active_streams, Gauge, "amqpgw_streams_active",                        \
    "StreamMessages streams open now.")                                    \
  X(reconnects, Counter, "amqpgw_session_reconnects_total",                \
    "Times the broker session was re-established after a loss.")

// Counters only the metrics show.
#define AMQPGW_METRICS_ONLY_COUNTERS(X)                         \
  X(published_bytes, Counter, "amqpgw_bytes_in_total",          \
    "Message body bytes received from callers for publishing.") \
  X(delivered_bytes, Counter, "amqpgw_bytes_out_total",         \
    "Message body bytes delivered to StreamMessages callers.")

#define AMQPGW_COUNTERS(X) \
  AMQPGW_API_COUNTERS(X) AMQPGW_METRICS_ONLY_COUNTERS(X)

namespace amqpgw::core {

// A consistent-enough copy of the counters (each read on its own).
struct CountersSnapshot {
#define AMQPGW_COUNTER_FIELD(name, kind, metric, help) uint64_t name = 0;
  AMQPGW_COUNTERS(AMQPGW_COUNTER_FIELD)
#undef AMQPGW_COUNTER_FIELD
};

namespace stats_internal {
using Counter = std::atomic<uint64_t>;
// A gauge is moved up and down by different threads and may dip below zero
// for a moment: read as 0 then.
using Gauge = std::atomic<int64_t>;
inline uint64_t Load(const Counter& c) {
  return c.load(std::memory_order_relaxed);
}
inline uint64_t Load(const Gauge& g) {
  int64_t v = g.load(std::memory_order_relaxed);
  return v > 0 ? static_cast<uint64_t>(v) : 0;
}
}  // namespace stats_internal

// The live counters; updated with relaxed atomics from any thread.
struct Stats {
#define AMQPGW_COUNTER_FIELD(name, kind, metric, help) \
  stats_internal::kind name{0};
  AMQPGW_COUNTERS(AMQPGW_COUNTER_FIELD)
#undef AMQPGW_COUNTER_FIELD

  // Per message the broker answered (basic.ack, basic.nack, basic.return),
  // its last write to the broker splits its time in two:
  // - publish_queued: from the call's hand-off to the session to that write
  //   (the gateway's own share: the hop to the publisher's thread, the queue
  //   there, a full confirm window, a blocked broker, a reconnect);
  // - publish_confirm: from that write to the broker's answer (the broker's
  //   share, the network's included).
  // daemon/operations.cc serves them as amqpgw_publish_queued_seconds and
  // amqpgw_publish_confirm_seconds.
  metrics::LatencyHistogram publish_queued;
  metrics::LatencyHistogram publish_confirm;

  CountersSnapshot Snapshot() const {
    CountersSnapshot s;
#define AMQPGW_COUNTER_LOAD(name, kind, metric, help) \
  s.name = stats_internal::Load(name);
    AMQPGW_COUNTERS(AMQPGW_COUNTER_LOAD)
#undef AMQPGW_COUNTER_LOAD
    return s;
  }
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_STATS_H_
