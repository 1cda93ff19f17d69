// libFuzzer target: arbitrary bytes as an AMQP field table and as basic
// properties. Whatever decodes must encode again, and that encoding must
// decode and encode to the same bytes (no crash, no leak, no undefined
// behaviour on any input). Bytes, not values, are compared: a NaN double
// is never == itself, yet must survive unchanged (found by this fuzzer).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/amqp/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  auto table = amqpgw::amqp::DecodeFieldTable(input);
  if (table.ok()) {
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
