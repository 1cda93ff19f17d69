// OtlpHttpExporter: sends spans to an OpenTelemetry collector as OTLP/HTTP
// JSON (POST <endpoint>/v1/traces, Content-Type application/json).
//
// Export() only appends to a bounded queue under a short lock: it never
// blocks on the network. When the queue is full the span is dropped and
// counted. One background thread owns the HTTP client: it sends a batch when
// `max_batch` spans are waiting or every `flush_interval`, and drops (and
// counts) a batch the collector refuses or does not answer in `timeout`.
//
// Thread safety: Export and counters from any thread; Shutdown once (the
// destructor calls it).
#ifndef AMQPGW_SERVER_TRACE_OTLP_EXPORTER_H_
#define AMQPGW_SERVER_TRACE_OTLP_EXPORTER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/base/sync.h"
#include "server/trace/span.h"

namespace amqpgw::trace {

// Who produced the spans (the OTLP resource and scope).
struct Resource {
  std::string service_name = "amqpgw";
  std::string service_version;
  std::string service_instance_id;
};

// An OTLP/HTTP endpoint split for the HTTP client.
struct Endpoint {
  std::string scheme_host_port;  // "http://host:4318"
  std::string path;              // "/v1/traces"
};

// Accepts http:// and https:// URLs. Without a path (or with "/"), the
// standard "/v1/traces" is appended, as OTEL_EXPORTER_OTLP_ENDPOINT does.
absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view url);

// An ExportTraceServiceRequest in OTLP's JSON encoding (hex ids, integer
// nanosecond timestamps as strings).
std::string EncodeOtlpJson(const std::vector<Span>& spans,
                           const Resource& resource);

class OtlpHttpExporter : public SpanExporter {
 public:
  struct Options {
    std::string endpoint;
    Resource resource;
    size_t max_queue = 8192;
    size_t max_batch = 512;
    absl::Duration flush_interval = absl::Seconds(1);
    absl::Duration timeout = absl::Seconds(10);
  };
  struct Counters {
    uint64_t exported = 0;  // accepted by the collector
    uint64_t dropped = 0;   // queue full
    uint64_t failed = 0;    // in batches the collector refused or missed
  };

  // Checks the endpoint and starts the thread.
  static absl::StatusOr<std::unique_ptr<OtlpHttpExporter>> Create(
      Options options);
  ~OtlpHttpExporter() override;

  void Export(Span span) override ABSL_LOCKS_EXCLUDED(mu_);
  // Sends what is queued (one attempt, bounded by `timeout`) and joins the
  // thread. Later spans are dropped.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  Counters counters() const;

 private:
  OtlpHttpExporter(Options options, Endpoint endpoint);
  void Run();
  bool Send(const std::vector<Span>& batch);

  const Options options_;
  const Endpoint endpoint_;

  mutable amqpgw::Mutex mu_;
  std::deque<Span> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> failed_{0};
  // Exporter thread only.
  absl::Time last_warning_ = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace amqpgw::trace

#endif  // AMQPGW_SERVER_TRACE_OTLP_EXPORTER_H_
