#include "server/trace/trace_context.h"

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/base/hex.h"

namespace amqpgw::trace {
namespace {

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(absl::string_view s) {
  return s.find_first_not_of('0') == absl::string_view::npos;
}

std::string RandomHex(int bytes) {
  thread_local absl::BitGen gen;  // seeded from the OS
  std::string out;
  out.reserve(bytes * 2);
  while (static_cast<int>(out.size()) < bytes * 2) {
    uint64_t v = absl::Uniform<uint64_t>(gen);
    for (int i = 0; i < 16 && static_cast<int>(out.size()) < bytes * 2; ++i) {
      out.push_back(kLowerHexDigits[v & 15]);
      v >>= 4;
    }
  }
  if (AllZero(out)) out.back() = '1';
  return out;
}

}  // namespace

std::string TraceContext::Traceparent() const {
  std::string out = absl::StrCat("00-", trace_id, "-", span_id, "-");
  char flag_byte = static_cast<char>(flags);
  AppendHex(absl::string_view(&flag_byte, 1), &out);
  return out;
}

TraceContext TraceContext::WithSpan(std::string span) const {
  TraceContext c = *this;
  c.span_id = std::move(span);
  return c;
}

std::optional<TraceContext> ParseTraceparent(absl::string_view tp,
                                             absl::string_view tracestate) {
  tp = absl::StripAsciiWhitespace(tp);
  // version "-" trace-id "-" parent-id "-" flags
  if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') {
    return std::nullopt;
  }
  absl::string_view version = tp.substr(0, 2);
  absl::string_view trace_id = tp.substr(3, 32);
  absl::string_view span_id = tp.substr(36, 16);
  absl::string_view flags = tp.substr(53, 2);
  if (!IsLowerHex(version) || version == "ff" || !IsLowerHex(trace_id) ||
      !IsLowerHex(span_id) || !IsLowerHex(flags) || AllZero(trace_id) ||
      AllZero(span_id)) {
    return std::nullopt;
  }
  // Version 00 has exactly four fields; later versions may append more.
  if (version == "00" ? tp.size() != 55 : (tp.size() > 55 && tp[55] != '-')) {
    return std::nullopt;
  }
  TraceContext c;
  c.trace_id = std::string(trace_id);
  c.span_id = std::string(span_id);
  c.flags = static_cast<uint8_t>(HexByte(flags[0], flags[1]));
  tracestate = absl::StripAsciiWhitespace(tracestate);
  bool printable = tracestate.size() <= 512;
  for (char ch : tracestate) {
    if (ch < 0x20 || ch > 0x7e) printable = false;
  }
  if (printable) c.tracestate = std::string(tracestate);
  return c;
}

TraceContext NewRootContext(bool sampled) {
  TraceContext c;
  c.trace_id = NewTraceId();
  c.span_id = NewSpanId();
  c.flags = sampled ? 1 : 0;
  return c;
}

std::string NewTraceId() { return RandomHex(16); }
std::string NewSpanId() { return RandomHex(8); }

}  // namespace amqpgw::trace
