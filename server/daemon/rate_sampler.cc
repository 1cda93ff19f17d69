#include "server/daemon/rate_sampler.h"

namespace amqpgw::daemon {

RateSampler::RateSampler(const core::Session* session) : session_(session) {
  ring_.Add(absl::Now(), Sample(session_->Counters()));
  thread_ = std::thread([this] { Run(); });
}

RateSampler::~RateSampler() {
  {
    amqpgw::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

RateSampler::Ring::Values RateSampler::Sample(const core::CountersSnapshot& c) {
  return {c.published, c.confirmed, c.delivered, c.acked};
}

grpc_api::RecentRates RateSampler::Recent(absl::Duration window) const {
  Ring::Rates r = ring_.Over(window, absl::Now(), Sample(session_->Counters()));
  grpc_api::RecentRates out;
  out.window = r.window;
  out.published = r.per_second[0];
  out.confirmed = r.per_second[1];
  out.delivered = r.per_second[2];
  out.acked = r.per_second[3];
  return out;
}

void RateSampler::Run() {
  absl::Time next = absl::Now() + absl::Seconds(1);
  for (;;) {
    {
      amqpgw::MutexLock lock(&mu_);
      auto stop = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithDeadline(absl::Condition(&stop), next)) return;
    }
    ring_.Add(absl::Now(), Sample(session_->Counters()));
    next += absl::Seconds(1);
    // After a stall (a suspended machine), sample now rather than catch up.
    if (next < absl::Now()) next = absl::Now() + absl::Seconds(1);
  }
}

}  // namespace amqpgw::daemon
