// RPC counts and latency histograms by method and status code.
//
// The hot path (Started, Finished) only does relaxed atomic increments on a
// shard picked per thread, so concurrent calls of the same method rarely
// touch the same cache line; Collect() adds the shards up when /metrics is
// scraped. Methods are fixed at construction (the label set stays bounded);
// any other method counts as "other".
//
// Thread safety: every method may be called from any thread.
#ifndef AMQPGW_SERVER_METRICS_RPC_METRICS_H_
#define AMQPGW_SERVER_METRICS_RPC_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/metrics/prometheus.h"

namespace amqpgw::metrics {

class RpcMetrics {
 public:
  // Status codes 0..16 (the canonical gRPC / absl codes).
  static constexpr int kCodes = 17;
  // Upper bounds of the latency buckets, in seconds (then +Inf).
  static constexpr std::array<double, 17> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
      0.5,    1,     2.5,    5,     10,   30,    60,   300};

  // `methods`: full gRPC method names, "/package.Service/Method".
  explicit RpcMetrics(const std::vector<std::string>& methods);
  ~RpcMetrics();
  RpcMetrics(const RpcMetrics&) = delete;
  RpcMetrics& operator=(const RpcMetrics&) = delete;

  // The index of a full method name; unknown names get the "other" index.
  int MethodIndex(absl::string_view full_method) const;

  void Started(int method);
  // `code` outside 0..16 counts as UNKNOWN (2).
  void Finished(int method, int code, absl::Duration elapsed);

  // Writes amqpgw_rpc_started_total, amqpgw_rpc_handled_total and
  // amqpgw_rpc_duration_seconds.
  void Collect(TextWriter& w) const;

  // Totals across shards, for tests.
  uint64_t HandledCount(int method, int code) const;

  static const char* CodeName(int code);

 private:
  struct Method {
    std::string service;  // "amqpgw.v1.Gateway"
    std::string name;     // "Publish"
  };
  struct Cell;
  struct Shard;

  Shard& ShardForThisThread() const;

  std::vector<Method> methods_;  // the last one is "other"
  absl::flat_hash_map<std::string, int> index_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace amqpgw::metrics

#endif  // AMQPGW_SERVER_METRICS_RPC_METRICS_H_
