// libFuzzer target: arbitrary bytes as an AMQP field table and as basic
// properties. Whatever decodes must encode again and decode to the same
// value (no crash, no leak, no undefined behaviour on any input).
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
      if (!again.ok() || !(*again == *table)) std::abort();
    }
  }
  auto props = amqpgw::amqp::DecodeProperties(input);
  if (props.ok()) {
    auto wire = amqpgw::amqp::EncodeProperties(*props);
    if (wire.ok()) {
      auto again = amqpgw::amqp::DecodeProperties(*wire);
      if (!again.ok() || !(*again == *props)) std::abort();
    }
  }
  return 0;
}
