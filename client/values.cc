#include "client/values.h"

#include <cmath>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace amqpgw::cli {
namespace {

using ::google::protobuf::Map;

// Decodes one UTF-8 code point at s[*i]; advances *i. Returns -1 for an
// invalid sequence (overlong, surrogate, above U+10FFFF, truncated).
int32_t NextCodePoint(absl::string_view s, size_t* i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(*i);
  if (c < 0x80) {
    ++*i;
    return c;
  }
  int len;
  int32_t cp;
  int32_t min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    ++*i;
    return -1;
  }
  if (*i + len > s.size()) {
    ++*i;
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    unsigned char cc = byte(*i + k);
    if ((cc & 0xC0) != 0x80) {
      ++*i;
      return -1;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++*i;
    return -1;
  }
  *i += len;
  return cp;
}

bool IsControl(int32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

absl::StatusOr<v1::FieldValue> FromJsonValue(const google::protobuf::Value& v,
                                             int depth) {
  if (depth > 16) {
    return absl::InvalidArgumentError("nested deeper than 16 levels");
  }
  v1::FieldValue out;
  switch (v.kind_case()) {
    case google::protobuf::Value::kNullValue:
      out.set_null_value(google::protobuf::NULL_VALUE);
      break;
    case google::protobuf::Value::kBoolValue:
      out.set_bool_value(v.bool_value());
      break;
    case google::protobuf::Value::kStringValue:
      out.set_string_value(v.string_value());
      break;
    case google::protobuf::Value::kNumberValue: {
      double d = v.number_value();
      if (std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) {
        out.set_int_value(static_cast<int64_t>(d));
      } else {
        out.set_double_value(d);
      }
      break;
    }
    case google::protobuf::Value::kStructValue:
      for (const auto& [k, child] : v.struct_value().fields()) {
        absl::StatusOr<v1::FieldValue> f = FromJsonValue(child, depth + 1);
        if (!f.ok()) return f.status();
        (*out.mutable_table_value()->mutable_fields())[k] = *std::move(f);
      }
      // An empty object is still a table.
      out.mutable_table_value();
      break;
    case google::protobuf::Value::kListValue:
      out.mutable_array_value();
      for (const auto& child : v.list_value().values()) {
        absl::StatusOr<v1::FieldValue> f = FromJsonValue(child, depth + 1);
        if (!f.ok()) return f.status();
        *out.mutable_array_value()->add_values() = *std::move(f);
      }
      break;
    default:
      return absl::InvalidArgumentError("empty JSON value");
  }
  return out;
}

absl::StatusOr<v1::FieldValue> ParseTyped(absl::string_view type,
                                          absl::string_view text) {
  v1::FieldValue out;
  const std::string t = absl::AsciiStrToLower(type);
  if (t == "string" || t == "str") {
    if (!IsValidUtf8(text)) {
      return absl::InvalidArgumentError("not UTF-8 (use :bytes with base64)");
    }
    out.set_string_value(std::string(text));
  } else if (t == "int" || t == "long" || t == "integer") {
    int64_t v;
    if (!absl::SimpleAtoi(text, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "' is not a 64-bit integer"));
    }
    out.set_int_value(v);
  } else if (t == "float" || t == "double") {
    double v;
    if (!absl::SimpleAtod(text, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "' is not a number"));
    }
    out.set_double_value(v);
  } else if (t == "bool" || t == "boolean") {
    bool v;
    if (!absl::SimpleAtob(text, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "' is not true or false"));
    }
    out.set_bool_value(v);
  } else if (t == "bytes") {
    std::string raw;
    if (!absl::Base64Unescape(text, &raw) &&
        !absl::WebSafeBase64Unescape(text, &raw)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "' is not base64"));
    }
    out.set_bytes_value(raw);
  } else if (t == "timestamp" || t == "time") {
    int64_t seconds;
    absl::Time time;
    std::string err;
    if (absl::SimpleAtoi(text, &seconds)) {
      out.mutable_timestamp_value()->set_seconds(seconds);
    } else if (absl::ParseTime(absl::RFC3339_full, std::string(text), &time,
                               &err)) {
      out.mutable_timestamp_value()->set_seconds(absl::ToUnixSeconds(time));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", text, "' is not a timestamp (RFC 3339 or Unix seconds)"));
    }
  } else if (t == "decimal") {
    std::string digits;
    uint32_t scale = 0;
    bool dot = false;
    for (char c : text) {
      if (c == '.' && !dot) {
        dot = true;
      } else if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
        digits += c;
        if (dot) ++scale;
      } else {
        digits.clear();
        break;
      }
    }
    uint32_t value;
    if (digits.empty() || scale > 255 || !absl::SimpleAtoi(digits, &value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", text, "' is not a decimal (digits, one '.', < 2^32 unscaled)"));
    }
    out.mutable_decimal_value()->set_scale(scale);
    out.mutable_decimal_value()->set_value(value);
  } else if (t == "null" || t == "void") {
    if (!text.empty()) {
      return absl::InvalidArgumentError("null takes no value (KEY:null=)");
    }
    out.set_null_value(google::protobuf::NULL_VALUE);
  } else if (t == "json") {
    return JsonToFieldValue(text);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown type '", type, "' (types: ", kFieldTypes, ")"));
  }
  return out;
}

std::string FormatKey(absl::string_view key) {
  bool plain = !key.empty() && IsPrintableText(key);
  for (char c : key) {
    if (c == ' ' || c == '=' || c == ',' || c == '"' || c == '{' || c == '}') {
      plain = false;
    }
  }
  return plain ? std::string(key) : JsonString(key);
}

}  // namespace

absl::StatusOr<NamedField> ParseFieldArg(absl::string_view arg) {
  size_t eq = arg.find('=');
  if (eq == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", arg, "': expected KEY=VALUE or KEY:TYPE=VALUE"));
  }
  absl::string_view left = arg.substr(0, eq);
  absl::string_view text = arg.substr(eq + 1);
  NamedField field;
  absl::string_view type = "string";
  if (size_t colon = left.rfind(':'); colon != absl::string_view::npos) {
    type = left.substr(colon + 1);
    left = left.substr(0, colon);
  }
  if (left.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", arg, "': the key is empty"));
  }
  if (!IsValidUtf8(left)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", arg, "': the key is not UTF-8"));
  }
  field.key = std::string(left);
  absl::StatusOr<v1::FieldValue> value = ParseTyped(type, text);
  if (!value.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", arg, "': ", value.status().message()));
  }
  field.value = *std::move(value);
  return field;
}

absl::Status ParseFieldArgs(const std::vector<std::string>& args,
                            absl::string_view flag,
                            Map<std::string, v1::FieldValue>* out) {
  for (const std::string& arg : args) {
    absl::StatusOr<NamedField> f = ParseFieldArg(arg);
    if (!f.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " ", f.status().message()));
    }
    (*out)[f->key] = std::move(f->value);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::FieldValue> JsonToFieldValue(absl::string_view json) {
  google::protobuf::Value v;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &v);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not JSON: ", status.message().as_string()));
  }
  return FromJsonValue(v, 0);
}

absl::StatusOr<absl::Duration> ParseDurationArg(absl::string_view text) {
  absl::Duration d;
  double seconds;
  if (absl::SimpleAtod(text, &seconds) && std::isfinite(seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a duration (e.g. 30s, 500ms, 2m, 1.5)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is negative"));
  }
  return d;
}

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  google::protobuf::Duration out;
  int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return out;
}

absl::StatusOr<v1::RetryPolicy> ParseRetryPolicy(absl::string_view text) {
  v1::RetryPolicy out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    if (key == "max") {
      absl::StatusOr<uint64_t> n = ParseCount(value, UINT32_MAX);
      if (!n.ok())
        return absl::InvalidArgumentError(
            absl::StrCat("max: ", n.status().message()));
      out.set_max_attempts(static_cast<uint32_t>(*n));
    } else if (key == "backoff") {
      std::pair<absl::string_view, absl::string_view> range =
          absl::StrSplit(value, absl::MaxSplits("..", 1));
      absl::StatusOr<absl::Duration> first = ParseDurationArg(range.first);
      if (!first.ok())
        return absl::InvalidArgumentError(
            absl::StrCat("backoff: ", first.status().message()));
      *out.mutable_initial_backoff() = ToProtoDuration(*first);
      if (!range.second.empty()) {
        absl::StatusOr<absl::Duration> last = ParseDurationArg(range.second);
        if (!last.ok())
          return absl::InvalidArgumentError(
              absl::StrCat("backoff: ", last.status().message()));
        *out.mutable_max_backoff() = ToProtoDuration(*last);
      }
    } else if (key == "multiplier" || key == "jitter") {
      double x;
      if (!absl::SimpleAtod(value, &x) || !std::isfinite(x)) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ": '", value, "' is not a number"));
      }
      if (key == "multiplier") {
        out.set_multiplier(x);
      } else {
        out.set_jitter(x);
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("'", key,
                       "' is not max, backoff, multiplier or jitter "
                       "(e.g. max=5,backoff=1s..1m)"));
    }
  }
  return out;
}

v1::DeadLetter ParseDeadLetter(absl::string_view text) {
  v1::DeadLetter out;
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(text, absl::MaxSplits(':', 1));
  out.set_exchange(std::string(parts.first));
  out.set_routing_key(std::string(parts.second));
  return out;
}

absl::StatusOr<v1::StreamOffset> ParseStreamOffset(absl::string_view text) {
  v1::StreamOffset out;
  std::string word = absl::AsciiStrToLower(text);
  uint64_t offset;
  absl::Time time;
  std::string err;
  if (word == "first") {
    out.set_position(v1::StreamOffset::FIRST);
  } else if (word == "last") {
    out.set_position(v1::StreamOffset::LAST);
  } else if (word == "next") {
    out.set_position(v1::StreamOffset::NEXT);
  } else if (absl::SimpleAtoi(text, &offset)) {
    out.set_offset(offset);
  } else if (absl::ParseTime(absl::RFC3339_full, std::string(text), &time,
                             &err)) {
    out.mutable_timestamp()->set_seconds(absl::ToUnixSeconds(time));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text,
        "' is not first, last, next, an offset (a whole number) or an RFC "
        "3339 time such as 2026-12-06T20:00:00Z"));
  }
  return out;
}

absl::StatusOr<uint64_t> ParseCount(absl::string_view text, uint64_t max) {
  uint64_t v;
  if (!absl::SimpleAtoi(text, &v) || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a whole number 0..", max));
  }
  return v;
}

std::string FormatFieldValue(const v1::FieldValue& value) {
  switch (value.kind_case()) {
    case v1::FieldValue::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case v1::FieldValue::kIntValue:
      return absl::StrCat(value.int_value());
    case v1::FieldValue::kDoubleValue:
      return absl::StrCat(value.double_value());
    case v1::FieldValue::kStringValue:
      return JsonString(value.string_value());
    case v1::FieldValue::kBytesValue:
      return absl::StrCat("b64:", absl::Base64Escape(value.bytes_value()));
    case v1::FieldValue::kTimestampValue:
      return FormatTimestamp(value.timestamp_value());
    case v1::FieldValue::kTableValue:
      return FormatFieldTable(value.table_value().fields());
    case v1::FieldValue::kArrayValue: {
      std::vector<std::string> parts;
      for (const auto& v : value.array_value().values()) {
        parts.push_back(FormatFieldValue(v));
      }
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
    case v1::FieldValue::kDecimalValue: {
      std::string digits = absl::StrCat(value.decimal_value().value());
      uint32_t scale = value.decimal_value().scale();
      if (scale == 0) return digits;
      if (digits.size() <= scale) {
        digits.insert(0, scale - digits.size() + 1, '0');
      }
      digits.insert(digits.size() - scale, ".");
      return digits;
    }
    case v1::FieldValue::kNullValue:
      return "null";
    default:
      return "?";
  }
}

std::string FormatFieldTable(const Map<std::string, v1::FieldValue>& table) {
  std::map<std::string, const v1::FieldValue*> sorted;
  for (const auto& [k, v] : table) sorted[k] = &v;
  std::vector<std::string> parts;
  for (const auto& [k, v] : sorted) {
    parts.push_back(absl::StrCat(FormatKey(k), "=", FormatFieldValue(*v)));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
}

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (NextCodePoint(s, &i) < 0) return false;
  }
  return true;
}

bool IsPrintableText(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    int32_t cp = NextCodePoint(s, &i);
    if (cp < 0 || IsControl(cp)) return false;
  }
  return true;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    int32_t cp = NextCodePoint(s, &i);
    if (cp < 0) {
      // Not UTF-8: show the byte, never pass it through.
      absl::StrAppend(
          &out,
          absl::StrFormat("\\u%04x", static_cast<unsigned char>(s[start])));
      continue;
    }
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (IsControl(cp)) {
          absl::StrAppend(&out, absl::StrFormat("\\u%04x", cp));
        } else {
          out.append(s.data() + start, i - start);
        }
    }
  }
  return out + "\"";
}

std::string HumanBody(absl::string_view body) {
  if (body.empty()) return "(empty body)";
  if (IsPrintableText(body)) return std::string(body);
  if (IsValidUtf8(body)) return JsonString(body);
  return absl::StrCat("<binary ", body.size(),
                      " bytes> base64:", absl::Base64Escape(body));
}

std::string WithThousands(int64_t n) {
  std::string digits = absl::StrCat(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string Plural(int64_t n, absl::string_view singular,
                   absl::string_view plural) {
  if (n == 1) return absl::StrCat("1 ", singular);
  return absl::StrCat(
      WithThousands(n), " ",
      plural.empty() ? absl::StrCat(singular, "s") : std::string(plural));
}

std::string FormatTimestamp(const google::protobuf::Timestamp& t) {
  absl::Time time =
      absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  return absl::FormatTime(
      t.nanos() == 0 ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%M:%E3SZ", time,
      absl::UTCTimeZone());
}

std::string FormatDuration(const google::protobuf::Duration& d) {
  return absl::FormatDuration(absl::Seconds(d.seconds()) +
                              absl::Nanoseconds(d.nanos()));
}

std::string FormatRate(double per_second) {
  if (!(per_second > 0)) return "0";
  if (per_second < 9.95) return absl::StrFormat("%.1f", per_second);
  return absl::StrFormat("%.0f", per_second);
}

std::string QueueTypeName(v1::QueueType type) {
  switch (type) {
    case v1::CLASSIC:
      return "classic";
    case v1::QUORUM:
      return "quorum";
    case v1::STREAM:
      return "stream";
    default:
      return "?";
  }
}

}  // namespace amqpgw::cli
