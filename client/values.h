// Text <-> API values for the CLI: typed header and argument flags
// ("key:int=5"), durations, and the safe display of message bodies and
// header values. Pure functions, no I/O.
#ifndef AMQPGW_CLIENT_VALUES_H_
#define AMQPGW_CLIENT_VALUES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "amqpgw/v1/gateway.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/map.h"
#include "google/protobuf/timestamp.pb.h"

namespace amqpgw::cli {

// The types a header or argument flag may name: "KEY:TYPE=VALUE".
// string (default), int, float (double), bool, bytes (base64), timestamp
// (RFC 3339 or Unix seconds), decimal ("12.34"), null, json (a JSON value:
// objects become tables, arrays arrays, integral numbers int).
constexpr absl::string_view kFieldTypes =
    "string, int, float, bool, bytes (base64), timestamp (RFC 3339 or Unix "
    "seconds), decimal, null, json (objects become tables)";

struct NamedField {
  std::string key;
  v1::FieldValue value;
};

// Parses "key=value" (a string) or "key:TYPE=value". The type is what
// follows the last ':' before the first '='.
absl::StatusOr<NamedField> ParseFieldArg(absl::string_view arg);

// Parses every `args` entry into `out`; errors name `flag` and the entry.
absl::Status ParseFieldArgs(
    const std::vector<std::string>& args, absl::string_view flag,
    google::protobuf::Map<std::string, v1::FieldValue>* out);

// A JSON value as a FieldValue (see kFieldTypes for the mapping).
absl::StatusOr<v1::FieldValue> JsonToFieldValue(absl::string_view json);

// "30s", "1.5s", "500ms", "2m", "1h30m", or a bare number of seconds.
absl::StatusOr<absl::Duration> ParseDurationArg(absl::string_view text);
// consume --retry-policy: comma-separated KEY=VALUE of
//   max=N                  max_attempts (0: no limit)
//   backoff=INITIAL[..MAX] initial_backoff and max_backoff (durations)
//   multiplier=X           1..100
//   jitter=X               0..1
// e.g. "max=5,backoff=1s..1m". The gateway checks the ranges.
absl::StatusOr<v1::RetryPolicy> ParseRetryPolicy(absl::string_view text);
// consume --dead-letter EXCHANGE[:KEY] ("" is the default exchange:
// ":QUEUE" sends to QUEUE).
v1::DeadLetter ParseDeadLetter(absl::string_view text);
// A duration as google.protobuf.Duration (whole nanoseconds).
google::protobuf::Duration ToProtoDuration(absl::Duration d);
// consume --offset: first, last, next, an absolute offset (a whole number)
// or an RFC 3339 time (e.g. 2026-12-06T20:00:00Z; whole seconds).
absl::StatusOr<v1::StreamOffset> ParseStreamOffset(absl::string_view text);
// A non-negative whole number no larger than `max`.
absl::StatusOr<uint64_t> ParseCount(absl::string_view text, uint64_t max);

// A header value in one short line: 5, 1.5, true, "text", b64:AAE=,
// {a=1, b="x"}, [1, 2], 2024-01-02T03:04:05Z, 12.34, null.
std::string FormatFieldValue(const v1::FieldValue& value);
// key=value pairs sorted by key, comma-separated, in braces.
std::string FormatFieldTable(
    const google::protobuf::Map<std::string, v1::FieldValue>& table);

bool IsValidUtf8(absl::string_view s);
// Valid UTF-8 with no control characters (C0, DEL, C1): safe on a terminal.
bool IsPrintableText(absl::string_view s);
// How the human output shows a body:
//   printable UTF-8           as is
//   UTF-8 with control chars  "quoted, with \n \t \u001b escapes"
//   anything else             <binary N bytes> base64:...
//   empty                     (empty body)
std::string HumanBody(absl::string_view body);
// A JSON string literal (quotes and escapes included).
std::string JsonString(absl::string_view s);

// "12,345".
std::string WithThousands(int64_t n);
// A count and its noun, the noun plural unless the count is 1:
// Plural(1, "message") is "1 message", Plural(1234, "message") "1,234
// messages", Plural(2, "delivery", "deliveries") "2 deliveries". Every count
// the CLI prints with a noun goes through here.
std::string Plural(int64_t n, absl::string_view singular,
                   absl::string_view plural = "");

std::string FormatTimestamp(const google::protobuf::Timestamp& t);
std::string FormatDuration(const google::protobuf::Duration& d);
// "classic", "quorum", "stream"; "?" for a type this CLI does not know.
std::string QueueTypeName(v1::QueueType type);
// Messages per second in a table: "0", "0.4", "12", "1500".
std::string FormatRate(double per_second);

}  // namespace amqpgw::cli

#endif  // AMQPGW_CLIENT_VALUES_H_
