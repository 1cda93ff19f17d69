// Gives back to the system the memory glibc's malloc keeps after a burst.
//
// When the broker raises a memory alarm, publishes wait in the gateway up to
// --max_pending_bytes; when it clears, all of that is freed within seconds.
// glibc keeps freed memory in its heaps: most of it lies in holes between
// blocks still in use, which neither trimming the top of a heap
// (M_TRIM_THRESHOLD) nor fewer arenas (M_ARENA_MAX) nor a lower mmap
// threshold returns (measured with real alarms: docs/edge.md). So the
// resident size stayed at its peak after every burst. malloc_trim(0) walks
// every arena and releases the free pages inside it (madvise).
//
// A thread checks every `interval`; it calls malloc_trim(0) when a burst
// has drained: the memory in use fell by `threshold` or more since its peak
// (since the last trim), and both the free memory malloc holds and the
// resident memory not in use exceed `threshold`. Steady traffic, whose use
// rises and falls by less, never triggers it. A trim that releases little
// (fragmentation at page grain) is not repeated for `backoff`. A trim holds
// each arena's lock while it walks it: 10 to 160 ms after a 256 MiB burst
// (measured), once per burst.
//
// Thread safety: construction and destruction from the daemon's thread;
// stats() from any thread.
#ifndef AMQPGW_SERVER_DAEMON_MEMORY_H_
#define AMQPGW_SERVER_DAEMON_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/base/sync.h"
#include "server/metrics/prometheus.h"

namespace amqpgw::daemon {

class MemoryTrimmer {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(1);
    size_t threshold = size_t{64} << 20;
    absl::Duration backoff = absl::Seconds(30);
  };
  struct Stats {
    uint64_t trims = 0;
    uint64_t released_bytes = 0;   // resident bytes the trims gave back
    size_t resident_bytes = 0;     // at the last check
    size_t malloc_free_bytes = 0;  // free memory malloc held, last check
    size_t malloc_in_use_bytes = 0;
  };

  explicit MemoryTrimmer(Options options);
  // Stops the thread.
  ~MemoryTrimmer();
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  Stats stats() const;
  // One check now (the thread calls it every interval; tests call it).
  void CheckOnce();

 private:
  void Run();

  const Options options_;
  mutable amqpgw::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  absl::Time quiet_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // The most memory in use seen since the last trim.
  size_t peak_in_use_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

// Fixes glibc's mmap threshold at its initial 128 KiB, so that every block
// of 128 KiB or more is mapped on its own, and only its touched pages are
// resident. Called at start-up (mallopt is thread-safe); keeps a value
// the environment set (MALLOC_MMAP_THRESHOLD_).
//
// rabbitmq-c keeps a decoding page of frame_max (128 KiB) per channel that
// ever received a frame, and touches a few KiB of it per delivery. With
// glibc's dynamic threshold, the first such mapped block freed (a channel
// closed) raises the threshold above it, and later pages come from the heap,
// where they reuse memory touched before: 5,000 open streams took 168 MB
// resident, and 146 MB with the threshold fixed (`amqpgw-bench streams
// --streams 5000`, docs/performance.md). Larger message bodies are mapped,
// faulted in and unmapped each time: at 1 MiB that is about 40 % of the
// gateway's CPU per message, and docs/operations.md gives the environment
// setting for deployments of large messages (it costs the idle streams).
void FixMmapThreshold();

// The process's resident size (bytes), from /proc/self/statm.
size_t ResidentBytes();

// amqpgw_memory_* families: resident size, malloc's free and in-use bytes,
// trims and the bytes they released.
void RegisterMemoryMetrics(metrics::Registry& registry,
                           const MemoryTrimmer* trimmer);

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_MEMORY_H_
