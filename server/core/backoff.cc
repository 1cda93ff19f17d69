#include "server/core/backoff.h"

#include <algorithm>

namespace amqpgw::core {

Backoff::Backoff(BackoffPolicy policy, uint64_t seed)
    : policy_(policy),
      current_(policy.initial),
      gen_(seed != 0 ? seed : std::random_device{}()) {}

absl::Duration Backoff::Next() {
  absl::Duration d = std::min(current_, policy_.max);
  current_ = std::min(policy_.max, current_ * policy_.multiplier);
  ++attempts_;
  double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  if (jitter == 0.0) return d;
  std::uniform_real_distribution<double> dist(1.0 - jitter, 1.0);
  return d * dist(gen_);
}

void Backoff::Reset() {
  current_ = policy_.initial;
  attempts_ = 0;
}

}  // namespace amqpgw::core
