// RateSampler: the gateway's own message rates for GetStatus (published,
// confirmed, delivered, acked per second over the last 10 s and minute).
// One thread samples the session's counters once a second into a ring
// (metrics::RateRing); a read averages from the right sample to the
// counters as they are at that moment.
//
// Thread safety: Recent from any thread; the destructor stops the thread.
#ifndef AMQPGW_SERVER_DAEMON_RATE_SAMPLER_H_
#define AMQPGW_SERVER_DAEMON_RATE_SAMPLER_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/base/sync.h"
#include "server/core/session.h"
#include "server/grpc/convert.h"
#include "server/metrics/rate_ring.h"

namespace amqpgw::daemon {

class RateSampler {
 public:
  // `session` must outlive the sampler. Starts sampling.
  explicit RateSampler(const core::Session* session);
  ~RateSampler();
  RateSampler(const RateSampler&) = delete;
  RateSampler& operator=(const RateSampler&) = delete;

  // Rates over the last `window` (at most a minute is kept).
  grpc_api::RecentRates Recent(absl::Duration window) const;

 private:
  using Ring = metrics::RateRing<4>;
  // The counters sampled, in the ring's order.
  static Ring::Values Sample(const core::CountersSnapshot& c);
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  const core::Session* const session_;
  Ring ring_{absl::Minutes(1)};
  amqpgw::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_RATE_SAMPLER_H_
