#include "client/progress.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/values.h"

namespace amqpgw::cli {

Progress::Progress(FILE* out, bool enabled, int64_t total)
    : out_(out), enabled_(enabled), total_(total), start_(absl::Now()) {}

std::string Progress::Line(int64_t done, int64_t total,
                           absl::Duration elapsed) {
  double seconds = absl::ToDoubleSeconds(elapsed);
  double rate = seconds > 0 ? done / seconds : 0;
  std::string line;
  if (total > 0) {
    constexpr int kBar = 24;
    double fraction = std::min(1.0, static_cast<double>(done) / total);
    int filled = static_cast<int>(fraction * kBar);
    line = absl::StrCat("[", std::string(filled, '#'),
                        std::string(kBar - filled, '.'), "] ",
                        WithThousands(done), "/", WithThousands(total), " ",
                        absl::StrFormat("%3.0f%%", fraction * 100));
  } else {
    line = Plural(done, "message");
  }
  absl::StrAppend(&line, "  ", WithThousands(std::llround(rate)), " msg/s");
  if (total > 0 && rate > 0 && done < total) {
    absl::StrAppend(
        &line, "  ETA ",
        absl::FormatDuration(absl::Seconds(std::ceil((total - done) / rate))));
  }
  return line;
}

void Progress::Update(int64_t done) {
  if (!enabled_) return;
  absl::Time now = absl::Now();
  if (now - last_draw_ < absl::Milliseconds(100)) return;
  last_draw_ = now;
  // '\r' back to the start of the line, ESC[K clears what was left of it.
  std::fprintf(out_, "\r%s\x1b[K", Line(done, total_, now - start_).c_str());
  std::fflush(out_);
  drawn_ = true;
}

void Progress::Finish() {
  if (!drawn_) return;
  std::fprintf(out_, "\r\x1b[K");
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace amqpgw::cli
