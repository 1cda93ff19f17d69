// A one-line progress bar on a terminal (stderr): done/total, percentage,
// rate and ETA, redrawn in place with '\r' at most ten times a second.
// Disabled, it prints nothing at all, so pipes and files never get control
// characters. Used by one thread.
#ifndef AMQPGW_CLIENT_PROGRESS_H_
#define AMQPGW_CLIENT_PROGRESS_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace amqpgw::cli {

class Progress {
 public:
  // `total` < 0: unknown (no bar, no ETA).
  Progress(FILE* out, bool enabled, int64_t total);
  ~Progress() { Finish(); }

  // `done` messages so far; redraws when 100 ms passed since the last draw.
  void Update(int64_t done);
  // Clears the line (once).
  void Finish();

  // The text of the line, without control characters (for tests).
  static std::string Line(int64_t done, int64_t total, absl::Duration elapsed);

 private:
  FILE* const out_;
  const bool enabled_;
  const int64_t total_;
  const absl::Time start_;
  absl::Time last_draw_ = absl::InfinitePast();
  bool drawn_ = false;
};

}  // namespace amqpgw::cli

#endif  // AMQPGW_CLIENT_PROGRESS_H_
