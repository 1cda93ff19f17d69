#include "server/metrics/rpc_metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace amqpgw::metrics {
namespace {

constexpr int kShards = 4;
constexpr size_t kBuckets = RpcMetrics::kBounds.size() + 1;  // with +Inf

}  // namespace

// One (method, code) pair in one shard. Buckets are not cumulative here.
struct alignas(64) RpcMetrics::Cell {
  std::atomic<uint64_t> buckets[kBuckets] = {};
  std::atomic<uint64_t> sum_ns{0};
};

struct RpcMetrics::Shard {
  explicit Shard(size_t methods)
      : started(new std::atomic<uint64_t>[methods]),
        cells(new Cell[methods * kCodes]) {
    for (size_t i = 0; i < methods; ++i) started[i] = 0;
  }
  std::unique_ptr<std::atomic<uint64_t>[]> started;
  std::unique_ptr<Cell[]> cells;
};

const char* RpcMetrics::CodeName(int code) {
  static constexpr const char* kNames[kCodes] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  return code >= 0 && code < kCodes ? kNames[code] : "UNKNOWN";
}

RpcMetrics::RpcMetrics(const std::vector<std::string>& methods) {
  for (const std::string& full : methods) {
    absl::string_view m = full;
    if (!m.empty() && m[0] == '/') m.remove_prefix(1);
    size_t slash = m.find('/');
    Method method;
    method.service = std::string(m.substr(0, slash));
    method.name = slash == absl::string_view::npos
                      ? ""
                      : std::string(m.substr(slash + 1));
    index_.emplace(full, static_cast<int>(methods_.size()));
    methods_.push_back(std::move(method));
  }
  methods_.push_back(Method{"other", "other"});
  for (int i = 0; i < kShards; ++i) {
    shards_.push_back(std::make_unique<Shard>(methods_.size()));
  }
}

RpcMetrics::~RpcMetrics() = default;

int RpcMetrics::MethodIndex(absl::string_view full_method) const {
  auto it = index_.find(full_method);
  return it == index_.end() ? static_cast<int>(methods_.size()) - 1
                            : it->second;
}

RpcMetrics::Shard& RpcMetrics::ShardForThisThread() const {
  static std::atomic<unsigned> next{0};
  thread_local unsigned mine = next.fetch_add(1, std::memory_order_relaxed);
  return *shards_[mine % shards_.size()];
}

void RpcMetrics::Started(int method) {
  ShardForThisThread().started[method].fetch_add(1, std::memory_order_relaxed);
}

void RpcMetrics::Finished(int method, int code, absl::Duration elapsed) {
  if (code < 0 || code >= kCodes) code = 2;
  double seconds = absl::ToDoubleSeconds(elapsed);
  size_t b = std::lower_bound(kBounds.begin(), kBounds.end(), seconds) -
             kBounds.begin();
  Cell& cell = ShardForThisThread().cells[method * kCodes + code];
  cell.buckets[b].fetch_add(1, std::memory_order_relaxed);
  int64_t ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(elapsed));
  cell.sum_ns.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

uint64_t RpcMetrics::HandledCount(int method, int code) const {
  uint64_t n = 0;
  for (const auto& shard : shards_) {
    const Cell& cell = shard->cells[method * kCodes + code];
    for (const auto& b : cell.buckets) n += b.load(std::memory_order_relaxed);
  }
  return n;
}

void RpcMetrics::Collect(TextWriter& w) const {
  const size_t n = methods_.size();
  w.Family("amqpgw_rpc_started_total", "counter",
           "RPCs started, by service and method.");
  for (size_t m = 0; m < n; ++m) {
    uint64_t started = 0;
    for (const auto& shard : shards_) {
      started += shard->started[m].load(std::memory_order_relaxed);
    }
    if (started == 0) continue;
    w.Sample("amqpgw_rpc_started_total",
             {{"service", methods_[m].service}, {"method", methods_[m].name}},
             static_cast<double>(started));
  }

  // Sum the shards once; both families below use the totals.
  struct Total {
    uint64_t buckets[kBuckets] = {};
    uint64_t count = 0;
    uint64_t sum_ns = 0;
  };
  std::vector<Total> totals(n * kCodes);
  for (const auto& shard : shards_) {
    for (size_t i = 0; i < n * kCodes; ++i) {
      const Cell& cell = shard->cells[i];
      for (size_t b = 0; b < kBuckets; ++b) {
        uint64_t v = cell.buckets[b].load(std::memory_order_relaxed);
        totals[i].buckets[b] += v;
        totals[i].count += v;
      }
      totals[i].sum_ns += cell.sum_ns.load(std::memory_order_relaxed);
    }
  }

  w.Family("amqpgw_rpc_handled_total", "counter",
           "RPCs completed, by service, method and status code.");
  for (size_t m = 0; m < n; ++m) {
    for (int c = 0; c < kCodes; ++c) {
      const Total& t = totals[m * kCodes + c];
      if (t.count == 0) continue;
      w.Sample("amqpgw_rpc_handled_total",
               {{"service", methods_[m].service},
                {"method", methods_[m].name},
                {"code", CodeName(c)}},
               static_cast<double>(t.count));
    }
  }

  w.Family("amqpgw_rpc_duration_seconds", "histogram",
           "Time from receiving an RPC to sending its status (for "
           "StreamMessages: the stream's lifetime), by service, method and "
           "status code.");
  for (size_t m = 0; m < n; ++m) {
    for (int c = 0; c < kCodes; ++c) {
      const Total& t = totals[m * kCodes + c];
      if (t.count == 0) continue;
      w.Histogram("amqpgw_rpc_duration_seconds",
                  {{"service", methods_[m].service},
                   {"method", methods_[m].name},
                   {"code", CodeName(c)}},
                  kBounds, t.buckets, static_cast<double>(t.sum_ns) / 1e9);
    }
  }
}

}  // namespace amqpgw::metrics
