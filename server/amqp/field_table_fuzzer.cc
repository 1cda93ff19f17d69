// libFuzzer target: arbitrary bytes as an AMQP field table and as basic
// properties. Whatever decodes must encode again, and that encoding must
// decode and encode to the same bytes (no crash, no leak, no undefined
// behaviour on any input). Bytes, not values, are compared: a NaN double
// is never == itself, yet must survive unchanged (found by this fuzzer).
//
// The broker rules (broker_rules.h) run on every decoded table and message:
// FindNonFiniteDouble must report a NaN or infinite double exactly when the
// table holds one (counted independently here), at a path that leads to it;
// the argument and publish checks must not crash on any table.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "server/amqp/broker_rules.h"
#include "server/amqp/codec.h"

namespace {

using amqpgw::amqp::FieldArray;
using amqpgw::amqp::FieldTable;
using amqpgw::amqp::FieldValue;

int CountNonFinite(const FieldValue& v);

int CountNonFinite(const FieldTable& t) {
  int n = 0;
  for (const auto& [k, v] : t) n += CountNonFinite(v);
  return n;
}

int CountNonFinite(const FieldValue& v) {
  if (const double* d = std::get_if<double>(&v.value)) {
    return std::isnan(*d) || std::isinf(*d) ? 1 : 0;
  }
  if (const FieldTable* t = std::get_if<FieldTable>(&v.value)) {
    return CountNonFinite(*t);
  }
  if (const FieldArray* a = std::get_if<FieldArray>(&v.value)) {
    int n = 0;
    for (const FieldValue& e : *a) n += CountNonFinite(e);
    return n;
  }
  return 0;
}

bool LeadsToNonFinite(const FieldValue& v, absl::string_view path);

// Whether `path` (["key"] and [index] steps, as FindNonFiniteDouble writes
// them) leads from `table` to a NaN or infinite double. Keys may repeat in a
// decoded table and may hold '"]' themselves: every reading is tried.
bool LeadsToNonFinite(const FieldTable& table, absl::string_view path) {
  if (path.substr(0, 2) != "[\"") return false;
  for (size_t end = path.find("\"]", 2); end != absl::string_view::npos;
       end = path.find("\"]", end + 1)) {
    absl::string_view key = path.substr(2, end - 2);
    for (const auto& [k, v] : table) {
      if (k == key && LeadsToNonFinite(v, path.substr(end + 2))) return true;
    }
  }
  return false;
}

bool LeadsToNonFinite(const FieldValue& v, absl::string_view path) {
  if (path.empty()) {
    const double* d = std::get_if<double>(&v.value);
    return d != nullptr && !std::isfinite(*d);
  }
  if (const FieldTable* t = std::get_if<FieldTable>(&v.value)) {
    return LeadsToNonFinite(*t, path);
  }
  const FieldArray* a = std::get_if<FieldArray>(&v.value);
  size_t end = path.find(']');
  size_t i = 0;
  if (a == nullptr || path[0] != '[' || end == absl::string_view::npos ||
      !absl::SimpleAtoi(path.substr(1, end - 1), &i) || i >= a->size()) {
    return false;
  }
  return LeadsToNonFinite((*a)[i], path.substr(end + 1));
}

void CheckRules(const FieldTable& table) {
  auto path = amqpgw::amqp::FindNonFiniteDouble(table);
  if (path.has_value() != (CountNonFinite(table) > 0)) std::abort();
  if (path.has_value() && !LeadsToNonFinite(table, *path)) std::abort();
  (void)amqpgw::amqp::CheckQueueArguments(table);
  (void)amqpgw::amqp::CheckConsumerArguments(table);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  auto table = amqpgw::amqp::DecodeFieldTable(input);
  if (table.ok()) {
    CheckRules(*table);
    auto wire = amqpgw::amqp::EncodeFieldTable(*table);
    // Decoding keeps at most 2 * kMaxTableDepth levels; encoding accepts
    // kMaxTableDepth, so deep input may fail to encode: that is allowed.
    if (wire.ok()) {
      auto again = amqpgw::amqp::DecodeFieldTable(*wire);
      if (!again.ok()) std::abort();
      auto wire_again = amqpgw::amqp::EncodeFieldTable(*again);
      if (!wire_again.ok() || *wire_again != *wire) std::abort();
    }
  }
  auto props = amqpgw::amqp::DecodeProperties(input);
  if (props.ok()) {
    if (props->headers.has_value()) CheckRules(*props->headers);
    amqpgw::amqp::OutgoingMessage m;
    m.properties = *props;
    (void)amqpgw::amqp::CheckPublish(m);
    auto wire = amqpgw::amqp::EncodeProperties(*props);
    if (wire.ok()) {
      auto again = amqpgw::amqp::DecodeProperties(*wire);
      if (!again.ok()) std::abort();
      auto wire_again = amqpgw::amqp::EncodeProperties(*again);
      if (!wire_again.ok() || *wire_again != *wire) std::abort();
    }
  }
  return 0;
}
