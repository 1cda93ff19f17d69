// Exponential backoff with jitter for reconnect attempts.
#ifndef AMQPGW_SERVER_CORE_BACKOFF_H_
#define AMQPGW_SERVER_CORE_BACKOFF_H_

#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace amqpgw::core {

struct BackoffPolicy {
  absl::Duration initial = absl::Milliseconds(100);
  absl::Duration max = absl::Seconds(10);
  double multiplier = 2.0;
  // Each delay is drawn uniformly from [d * (1 - jitter), d].
  double jitter = 0.5;
};

// Not thread-safe; owned by one connection thread.
class Backoff {
 public:
  // `seed` 0 seeds from std::random_device; tests pass a fixed one.
  explicit Backoff(BackoffPolicy policy, uint64_t seed = 0);

  // The delay before the next attempt; grows towards policy.max.
  absl::Duration Next();
  // Call after a success: the next delay starts from policy.initial again.
  void Reset();
  int attempts() const { return attempts_; }

 private:
  BackoffPolicy policy_;
  absl::Duration current_;
  int attempts_ = 0;
  std::mt19937_64 gen_;
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_BACKOFF_H_
