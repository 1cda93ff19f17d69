#include "server/trace/otlp_exporter.h"

#include <httplib.h>

#include <cstdio>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/base/http_url.h"
#include "server/base/sync.h"
#include "spdlog/spdlog.h"

namespace amqpgw::trace {
namespace {

// Appends `s` as a JSON string. Bytes that are not valid UTF-8 become
// U+FFFD, so the document is always valid JSON.
void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          *out += "\\\"";
          break;
        case '\\':
          *out += "\\\\";
          break;
        case '\n':
          *out += "\\n";
          break;
        case '\r':
          *out += "\\r";
          break;
        case '\t':
          *out += "\\t";
          break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            *out += buf;
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // Length of a valid UTF-8 sequence starting here, or 0.
    size_t len = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    }
    if (ok && len == 3) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 > 0x9f);
    } else if (ok && len == 4) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 > 0x8f);
    }
    if (ok) {
      out->append(s.data() + i, len);
      i += len;
    } else {
      *out += "\xef\xbf\xbd";
      ++i;
    }
  }
  out->push_back('"');
}

void AppendKeyValue(absl::string_view key, const Attribute& a,
                    std::string* out) {
  *out += "{\"key\":";
  AppendJsonString(key, out);
  *out += ",\"value\":{";
  if (const auto* s = std::get_if<std::string>(&a.value)) {
    *out += "\"stringValue\":";
    AppendJsonString(*s, out);
  } else if (const auto* i = std::get_if<int64_t>(&a.value)) {
    absl::StrAppend(out, "\"intValue\":\"", *i, "\"");
  } else if (const auto* b = std::get_if<bool>(&a.value)) {
    absl::StrAppend(out, "\"boolValue\":", *b ? "true" : "false");
  } else if (const auto* d = std::get_if<double>(&a.value)) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.17g", *d);
    absl::StrAppend(out, "\"doubleValue\":", buf);
  }
  *out += "}}";
}

std::string UnixNanos(absl::Time t) {
  return absl::StrCat(absl::ToUnixNanos(t));
}

}  // namespace

absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view url) {
  absl::StatusOr<HttpUrl> parsed = ParseHttpUrl(url);
  if (!parsed.ok()) return parsed.status();
  Endpoint e;
  e.scheme_host_port = parsed->SchemeHostPort();
  e.path = parsed->path;
  if (e.path.empty() || e.path == "/") e.path = "/v1/traces";
  return e;
}

std::string EncodeOtlpJson(const std::vector<Span>& spans,
                           const Resource& resource) {
  std::string out;
  out.reserve(256 + spans.size() * 512);
  out += "{\"resourceSpans\":[{\"resource\":{\"attributes\":[";
  AppendKeyValue("service.name", Attribute{"", resource.service_name}, &out);
  if (!resource.service_version.empty()) {
    out += ",";
    AppendKeyValue("service.version", Attribute{"", resource.service_version},
                   &out);
  }
  if (!resource.service_instance_id.empty()) {
    out += ",";
    AppendKeyValue("service.instance.id",
                   Attribute{"", resource.service_instance_id}, &out);
  }
  out += "]},\"scopeSpans\":[{\"scope\":{\"name\":\"amqpgw\"";
  if (!resource.service_version.empty()) {
    out += ",\"version\":";
    AppendJsonString(resource.service_version, &out);
  }
  out += "},\"spans\":[";
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    if (i > 0) out += ",";
    out += "{\"traceId\":";
    AppendJsonString(s.trace_id, &out);
    out += ",\"spanId\":";
    AppendJsonString(s.span_id, &out);
    if (!s.parent_span_id.empty()) {
      out += ",\"parentSpanId\":";
      AppendJsonString(s.parent_span_id, &out);
    }
    if (!s.trace_state.empty()) {
      out += ",\"traceState\":";
      AppendJsonString(s.trace_state, &out);
    }
    out += ",\"name\":";
    AppendJsonString(s.name, &out);
    absl::StrAppend(&out, ",\"kind\":", static_cast<int>(s.kind),
                    ",\"startTimeUnixNano\":\"", UnixNanos(s.start),
                    "\",\"endTimeUnixNano\":\"", UnixNanos(s.end),
                    "\",\"attributes\":[");
    for (size_t k = 0; k < s.attributes.size(); ++k) {
      if (k > 0) out += ",";
      AppendKeyValue(s.attributes[k].key, s.attributes[k], &out);
    }
    out += "],\"status\":{";
    if (s.error) {
      out += "\"code\":2,\"message\":";
      AppendJsonString(s.status_message, &out);
    }
    out += "}}";
  }
  out += "]}]}]}";
  return out;
}

absl::StatusOr<std::unique_ptr<OtlpHttpExporter>> OtlpHttpExporter::Create(
    Options options) {
  absl::StatusOr<Endpoint> endpoint = ParseEndpoint(options.endpoint);
  if (!endpoint.ok()) return endpoint.status();
  std::unique_ptr<OtlpHttpExporter> e(
      new OtlpHttpExporter(std::move(options), *std::move(endpoint)));
  e->thread_ = std::thread([p = e.get()] { p->Run(); });
  return e;
}

OtlpHttpExporter::OtlpHttpExporter(Options options, Endpoint endpoint)
    : options_(std::move(options)), endpoint_(std::move(endpoint)) {}

OtlpHttpExporter::~OtlpHttpExporter() { Shutdown(); }

void OtlpHttpExporter::Export(Span span) {
  amqpgw::MutexLock lock(&mu_);
  if (stopping_ || queue_.size() >= options_.max_queue) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queue_.push_back(std::move(span));
}

void OtlpHttpExporter::Shutdown() {
  {
    amqpgw::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

OtlpHttpExporter::Counters OtlpHttpExporter::counters() const {
  Counters c;
  c.exported = exported_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.failed = failed_.load(std::memory_order_relaxed);
  return c;
}

void OtlpHttpExporter::Run() {
  for (;;) {
    std::vector<Span> batch;
    bool stop;
    {
      amqpgw::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || queue_.size() >= options_.max_batch;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), options_.flush_interval);
      stop = stopping_;
      size_t n = std::min(queue_.size(), options_.max_batch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (stop && !queue_.empty()) stop = false;  // send the rest first
    }
    if (!batch.empty()) {
      if (Send(batch)) {
        exported_.fetch_add(batch.size(), std::memory_order_relaxed);
      } else {
        failed_.fetch_add(batch.size(), std::memory_order_relaxed);
      }
    }
    if (stop) return;
  }
}

bool OtlpHttpExporter::Send(const std::vector<Span>& batch) {
  std::string body = EncodeOtlpJson(batch, options_.resource);
  httplib::Client client(endpoint_.scheme_host_port);
  int64_t ms = absl::ToInt64Milliseconds(options_.timeout);
  client.set_connection_timeout(std::chrono::milliseconds(ms));
  client.set_read_timeout(std::chrono::milliseconds(ms));
  client.set_write_timeout(std::chrono::milliseconds(ms));
  httplib::Result r =
      client.Post(endpoint_.path.c_str(), body, "application/json");
  std::string problem;
  if (!r) {
    problem = httplib::to_string(r.error());
  } else if (r->status < 200 || r->status >= 300) {
    problem = absl::StrCat("HTTP ", r->status);
  } else {
    return true;
  }
  // At most one warning a minute: a missing collector must not flood logs.
  absl::Time now = absl::Now();
  if (now - last_warning_ >= absl::Minutes(1)) {
    last_warning_ = now;
    spdlog::warn("tracing: could not send {} spans to {}{}: {}", batch.size(),
                 endpoint_.scheme_host_port, endpoint_.path, problem);
  }
  return false;
}

}  // namespace amqpgw::trace
