// Waiting on a condition with a deadline (tests never sleep to synchronise).
#ifndef AMQPGW_TESTS_SUPPORT_WAIT_H_
#define AMQPGW_TESTS_SUPPORT_WAIT_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace amqpgw::testing {

// Polls `condition` until it holds or `timeout` passes; returns its last
// value.
inline bool WaitFor(const std::function<bool()>& condition,
                    absl::Duration timeout = absl::Seconds(30),
                    absl::Duration poll = absl::Milliseconds(10)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(poll);
  }
  return condition();
}

// Load tests divide their message counts by this: under ThreadSanitizer
// code runs 5 to 15 times slower, and the point there is the interleavings,
// not the volume.
#if defined(__SANITIZE_THREAD__)
inline constexpr int kLoadDivisor = 10;
#else
inline constexpr int kLoadDivisor = 1;
#endif

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_WAIT_H_
