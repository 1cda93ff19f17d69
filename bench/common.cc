#include "bench/common.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace amqpgw::bench {

Flags::Flags(int argc, char** argv, const char* usage) : usage_(usage) {
  int i = 1;
  if (argc < 2 || argv[1][0] == '-') {
    std::string first = argc >= 2 ? argv[1] : "";
    if (first == "-h" || first == "--help") {
      std::fputs(usage_, stdout);
      std::exit(0);
    }
    Die("the first argument is the mode");
  }
  mode_ = argv[i++];
  while (i < argc) {
    std::string arg = argv[i++];
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage_, stdout);
      std::exit(0);
    }
    if (arg.size() < 2 || arg[0] != '-') Die("unexpected argument " + arg);
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    name = absl::StrReplaceAll(name, {{"-", "_"}});
    if (!has_value) {
      // A switch unless the next word is a value.
      if (i < argc &&
          (argv[i][0] != '-' || (argv[i][1] >= '0' && argv[i][1] <= '9'))) {
        value = argv[i++];
      } else {
        value = "true";
      }
    }
    values_[name] = value;
  }
}

void Flags::Die(const std::string& message) const {
  std::fprintf(stderr, "error: %s\n\n%s", message.c_str(), usage_);
  std::exit(2);
}

std::string Flags::Str(const std::string& name, const std::string& def) {
  used_[name] = true;
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

int64_t Flags::Int(const std::string& name, int64_t def) {
  std::string v = Str(name, "");
  if (v.empty()) return def;
  int64_t out;
  // Allow 100k / 1m for readability.
  int64_t mult = 1;
  if (!v.empty() && (v.back() == 'k' || v.back() == 'K')) {
    mult = 1000;
    v.pop_back();
  } else if (!v.empty() && (v.back() == 'm' || v.back() == 'M')) {
    mult = 1000000;
    v.pop_back();
  }
  if (!absl::SimpleAtoi(v, &out)) Die("--" + name + ": not an integer");
  return out * mult;
}

double Flags::Double(const std::string& name, double def) {
  std::string v = Str(name, "");
  if (v.empty()) return def;
  double out;
  if (!absl::SimpleAtod(v, &out)) Die("--" + name + ": not a number");
  return out;
}

bool Flags::Bool(const std::string& name, bool def) {
  std::string v = Str(name, "");
  if (v.empty()) return def;
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  Die("--" + name + ": true or false");
}

void Flags::CheckAllUsed() {
  for (const auto& [name, value] : values_) {
    if (!used_[name]) Die("unknown flag --" + name + " for mode " + mode_);
  }
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

double Latencies::PercentileUs(double q) {
  if (ns_.empty()) return 0;
  if (!sorted_) {
    std::sort(ns_.begin(), ns_.end());
    sorted_ = true;
  }
  size_t i = static_cast<size_t>(std::ceil(q * ns_.size()));
  if (i > 0) --i;
  i = std::min(i, ns_.size() - 1);
  return static_cast<double>(ns_[i]) / 1000.0;
}

ProcWatch::~ProcWatch() {
  stop_.store(true);
  if (sampler_.joinable()) sampler_.join();
}

double ProcWatch::CpuSeconds() const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return 0;
  // The command name may hold spaces: fields start after the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  // Fields 3.. ; utime is field 14, stime 15 (1-based).
  uint64_t utime = 0, stime = 0;
  for (int f = 3; f <= 15 && rest >> field; ++f) {
    if (f == 14) absl::SimpleAtoi(field, &utime);
    if (f == 15) absl::SimpleAtoi(field, &stime);
  }
  return static_cast<double>(utime + stime) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

double ProcWatch::ReadStatusMb(const char* key) const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      int64_t kb = 0;
      std::istringstream v(line.substr(std::string(key).size()));
      v >> kb;
      return static_cast<double>(kb) / 1024.0;
    }
  }
  return 0;
}

double ProcWatch::RssMb() const {
  return enabled() ? ReadStatusMb("VmRSS:") : 0;
}

void ProcWatch::Start() {
  if (!enabled()) return;
  // "5" resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
  {
    std::ofstream clear(absl::StrCat("/proc/", pid_, "/clear_refs"));
    clear << "5";
    clear.flush();
    hwm_reset_ = clear.good();
  }
  sampled_peak_kb_.store(static_cast<int64_t>(RssMb() * 1024));
  stop_.store(false);
  sampler_ = std::thread([this] {
    while (!stop_.load()) {
      int64_t kb = static_cast<int64_t>(RssMb() * 1024);
      if (kb > sampled_peak_kb_.load()) sampled_peak_kb_.store(kb);
      usleep(10000);
    }
  });
  cpu_start_ = CpuSeconds();
}

void ProcWatch::Stop() {
  if (!enabled()) return;
  cpu_end_ = CpuSeconds();
  stop_.store(true);
  if (sampler_.joinable()) sampler_.join();
  double sampled = static_cast<double>(sampled_peak_kb_.load()) / 1024.0;
  peak_rss_mb_ =
      hwm_reset_ ? std::max(ReadStatusMb("VmHWM:"), sampled) : sampled;
}

double SelfCpuSeconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

Summary& Summary::Set(const std::string& key, const std::string& value) {
  for (auto& [k, v] : items_) {
    if (k == key) {
      v = value;
      return *this;
    }
  }
  items_.emplace_back(key, value);
  return *this;
}

Summary& Summary::Set(const std::string& key, int64_t value) {
  return Set(key, absl::StrCat(value));
}

Summary& Summary::Set(const std::string& key, double value, int decimals) {
  return Set(key, absl::StrFormat("%.*f", decimals, value));
}

void Summary::Print() const {
  std::string line;
  for (const auto& [k, v] : items_) {
    if (!line.empty()) line += ' ';
    absl::StrAppend(&line, k, "=", v);
  }
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void AddThroughput(Summary& s, uint64_t messages, absl::Duration elapsed) {
  double secs = absl::ToDoubleSeconds(elapsed);
  s.Set("elapsed_s", secs, 3);
  s.Set("msgs_per_s", secs > 0 ? static_cast<double>(messages) / secs : 0.0, 0);
}

void AddLatencies(Summary& s, Latencies& lat) {
  s.Set("p50_us", lat.PercentileUs(0.5), 1)
      .Set("p99_us", lat.PercentileUs(0.99), 1)
      .Set("p999_us", lat.PercentileUs(0.999), 1);
}

void AddClientCpu(Summary& s, double cpu_seconds, uint64_t messages) {
  s.Set("client_cpu_us_per_msg",
        messages > 0 ? cpu_seconds * 1e6 / static_cast<double>(messages) : 0.0,
        2);
}

void AddProcess(Summary& s, const std::string& prefix, const ProcWatch& w,
                uint64_t messages, absl::Duration elapsed) {
  if (!w.enabled()) return;
  double secs = absl::ToDoubleSeconds(elapsed);
  s.Set(prefix + "_cpu_us_per_msg",
        messages > 0 ? w.cpu_seconds() * 1e6 / static_cast<double>(messages)
                     : 0.0,
        2);
  s.Set(prefix + "_cpu_pct", secs > 0 ? 100.0 * w.cpu_seconds() / secs : 0.0,
        1);
  s.Set(prefix + "_rss_peak_mb", w.peak_rss_mb(), 1);
}

std::string MakeBody(size_t size) {
  std::string body(size, ' ');
  for (size_t i = 0; i < size; ++i) {
    body[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  }
  return body;
}

}  // namespace amqpgw::bench
