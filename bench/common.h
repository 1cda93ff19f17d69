// Shared by amqpgw-bench (through the gateway) and amqpgw-bench-direct
// (rabbitmq-c straight to the broker): flags, latency percentiles, CPU and
// memory of other processes read from /proc, and the one-line summary both
// tools print, so that their figures are measured and reported the same way.
#ifndef AMQPGW_BENCH_COMMON_H_
#define AMQPGW_BENCH_COMMON_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace amqpgw::bench {

// Command line: MODE [--flag value | --flag=value | -n N | --switch]...
// `-` and `_` are the same in flag names.
class Flags {
 public:
  // Exits with a usage message on a malformed command line.
  Flags(int argc, char** argv, const char* usage);

  const std::string& mode() const { return mode_; }
  std::string Str(const std::string& name, const std::string& def);
  int64_t Int(const std::string& name, int64_t def);
  double Double(const std::string& name, double def);
  bool Bool(const std::string& name, bool def);
  // Whether the flag was given (`name` with '_').
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // Exits when a flag was given that no Str/Int/Bool call asked for.
  void CheckAllUsed();
  [[noreturn]] void Die(const std::string& message) const;

 private:
  const char* usage_;
  std::string mode_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> used_;
};

// Monotonic nanoseconds.
int64_t NowNs();

// Per-operation latencies (nanoseconds); percentiles by sorting once.
class Latencies {
 public:
  void Reserve(size_t n) { ns_.reserve(n); }
  void Add(int64_t ns) { ns_.push_back(ns); }
  size_t size() const { return ns_.size(); }
  // Appends these latencies to `other`.
  void MergeInto(Latencies* other) const {
    other->ns_.insert(other->ns_.end(), ns_.begin(), ns_.end());
    other->sorted_ = false;
  }
  // Microseconds at quantile q in [0, 1]; 0 when empty. Sorts.
  double PercentileUs(double q);

 private:
  std::vector<int64_t> ns_;
  bool sorted_ = false;
};

// CPU time and memory of a process (the gateway, the broker) over an
// interval, from /proc/PID/stat and /proc/PID/status. CPU time counts every
// thread of the process, including ones that ended, in clock ticks (10 ms).
// Peak RSS: the kernel's high-water mark, reset at Start() through
// /proc/PID/clear_refs when allowed; otherwise the largest RSS seen by a
// 10 ms sampler.
class ProcWatch {
 public:
  explicit ProcWatch(pid_t pid) : pid_(pid) {}
  ~ProcWatch();
  bool enabled() const { return pid_ > 0; }
  void Start();
  void Stop();
  double cpu_seconds() const { return cpu_end_ - cpu_start_; }
  double peak_rss_mb() const { return peak_rss_mb_; }
  // Now, outside an interval.
  double RssMb() const;
  double CpuSeconds() const;

 private:
  double ReadStatusMb(const char* key) const;

  pid_t pid_;
  double cpu_start_ = 0, cpu_end_ = 0;
  double peak_rss_mb_ = 0;
  bool hwm_reset_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> sampled_peak_kb_{0};
  std::thread sampler_;
};

// CPU seconds this process used so far (user + system).
double SelfCpuSeconds();

// The key=value summary line, in insertion order.
class Summary {
 public:
  Summary& Set(const std::string& key, const std::string& value);
  Summary& Set(const std::string& key, int64_t value);
  Summary& Set(const std::string& key, double value, int decimals);
  void Print() const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// The common figures of a throughput run.
void AddThroughput(Summary& s, uint64_t messages, absl::Duration elapsed);
// p50_us, p99_us and p999_us of `lat`.
void AddLatencies(Summary& s, Latencies& lat);
// client_cpu_us_per_msg: this process's CPU seconds per message.
void AddClientCpu(Summary& s, double cpu_seconds, uint64_t messages);
// cpu_us_per_msg and peak RSS for one watched process, keys prefixed.
void AddProcess(Summary& s, const std::string& prefix, const ProcWatch& w,
                uint64_t messages, absl::Duration elapsed);

// A body of `size` bytes (printable, not all alike).
std::string MakeBody(size_t size);

}  // namespace amqpgw::bench

#endif  // AMQPGW_BENCH_COMMON_H_
