#include "server/daemon/memory.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "spdlog/spdlog.h"

namespace amqpgw::daemon {

size_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<size_t>(resident) *
         static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

MemoryTrimmer::MemoryTrimmer(Options options)
    : options_(options), thread_([this] { Run(); }) {}

MemoryTrimmer::~MemoryTrimmer() {
  {
    amqpgw::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

MemoryTrimmer::Stats MemoryTrimmer::stats() const {
  amqpgw::MutexLock lock(&mu_);
  return stats_;
}

void MemoryTrimmer::Run() {
  while (true) {
    {
      amqpgw::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.interval);
      if (stop_) return;
    }
    CheckOnce();
  }
}

void MemoryTrimmer::CheckOnce() {
  struct mallinfo2 info = mallinfo2();
  const size_t in_use = info.uordblks + info.hblkhd;
  const size_t resident = ResidentBytes();
  const size_t slack = resident > in_use ? resident - in_use : 0;
  const absl::Time now = absl::Now();
  bool trim = false;
  {
    amqpgw::MutexLock lock(&mu_);
    stats_.resident_bytes = resident;
    stats_.malloc_free_bytes = info.fordblks;
    stats_.malloc_in_use_bytes = in_use;
    trim = info.fordblks >= options_.threshold && slack >= options_.threshold &&
           now >= quiet_until_;
  }
  if (!trim) return;
  const absl::Time start = absl::Now();
  malloc_trim(0);
  const absl::Duration took = absl::Now() - start;
  const size_t after = ResidentBytes();
  const size_t released = resident > after ? resident - after : 0;
  amqpgw::MutexLock lock(&mu_);
  ++stats_.trims;
  stats_.released_bytes += released;
  peak_in_use_ = in_use;
  stats_.resident_bytes = after;
  if (released < options_.threshold / 4) quiet_until_ = now + options_.backoff;
  spdlog::debug("memory: malloc_trim gave back {} MiB in {} (resident {} MiB)",
                released >> 20, absl::FormatDuration(took), after >> 20);
}

void RegisterMemoryMetrics(metrics::Registry& registry,
                           const MemoryTrimmer* trimmer) {
  registry.Add([trimmer](metrics::TextWriter& w) {
    MemoryTrimmer::Stats s = trimmer->stats();
    w.Gauge("amqpgw_memory_resident_bytes",
            "The daemon's resident size at the last memory check (1 s).",
            static_cast<double>(s.resident_bytes));
    w.Gauge("amqpgw_memory_malloc_free_bytes",
            "Free memory malloc held at the last check (resident or not).",
            static_cast<double>(s.malloc_free_bytes));
    w.Gauge("amqpgw_memory_malloc_in_use_bytes",
            "Memory in malloc blocks in use at the last check.",
            static_cast<double>(s.malloc_in_use_bytes));
    w.Counter("amqpgw_memory_trims_total",
              "malloc_trim calls after a burst (see docs: memory).",
              static_cast<double>(s.trims));
    w.Counter("amqpgw_memory_trimmed_bytes_total",
              "Resident bytes malloc_trim gave back to the system.",
              static_cast<double>(s.released_bytes));
  });
}

void FixMmapThreshold() {
  if (getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) return;
  if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) != 1) {
    spdlog::warn("mallopt(M_MMAP_THRESHOLD) failed; memory per stream grows");
  }
}

}  // namespace amqpgw::daemon
