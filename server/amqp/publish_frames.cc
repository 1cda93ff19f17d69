#include "server/amqp/publish_frames.h"

#include <algorithm>

namespace amqpgw::amqp::internal {
namespace {

// A frame: type (1), channel (2), payload size (4), payload, frame-end (1).
constexpr size_t kFrameHeader = 7;
constexpr size_t kFrameOverhead = kFrameHeader + 1;
constexpr uint8_t kFrameEnd = 0xCE;

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}

void AppendFrameHeader(uint8_t type, uint16_t channel, size_t size,
                       std::string* out) {
  uint8_t h[kFrameHeader];
  h[0] = type;
  Put16(h + 1, channel);
  Put32(h + 3, static_cast<uint32_t>(size));
  out->append(reinterpret_cast<const char*>(h), sizeof(h));
}

}  // namespace

PublishFrameEncoder::PublishFrameEncoder(uint32_t frame_max)
    : frame_max_(std::max<uint32_t>(frame_max, 4096)),
      scratch_(new uint8_t[frame_max_]) {}

void PublishFrameEncoder::AppendFrame(uint8_t type, uint16_t channel,
                                      const uint8_t* payload, size_t size,
                                      std::string* out) {
  AppendFrameHeader(type, channel, size, out);
  out->append(reinterpret_cast<const char*>(payload), size);
  out->push_back(static_cast<char>(kFrameEnd));
}

int PublishFrameEncoder::AppendHead(uint16_t channel,
                                    const amqp_basic_publish_t& method,
                                    const amqp_basic_properties_t& properties,
                                    uint64_t body_size, std::string* out) {
  const size_t payload_max = frame_max_ - kFrameOverhead;

  // The method frame: method id, then its fields. Encoded into scratch
  // first, so that nothing is appended when it does not encode.
  Put32(scratch_.get(), AMQP_BASIC_PUBLISH_METHOD);
  amqp_bytes_t m{payload_max - 4, scratch_.get() + 4};
  int method_size = amqp_encode_method(
      AMQP_BASIC_PUBLISH_METHOD, const_cast<amqp_basic_publish_t*>(&method), m);
  if (method_size < 0) return method_size;
  const size_t before = out->size();
  AppendFrame(AMQP_FRAME_METHOD, channel, scratch_.get(),
              static_cast<size_t>(method_size) + 4, out);

  // The content header: class, weight 0, body size, then the properties.
  Put16(scratch_.get(), AMQP_BASIC_CLASS);
  Put16(scratch_.get() + 2, 0);
  Put64(scratch_.get() + 4, body_size);
  amqp_bytes_t p{payload_max - 12, scratch_.get() + 12};
  int props_size = amqp_encode_properties(
      AMQP_BASIC_CLASS, const_cast<amqp_basic_properties_t*>(&properties), p);
  if (props_size < 0) {
    out->resize(before);
    return props_size;
  }
  AppendFrame(AMQP_FRAME_HEADER, channel, scratch_.get(),
              static_cast<size_t>(props_size) + 12, out);
  return AMQP_STATUS_OK;
}

size_t PublishFrameEncoder::AppendBody(uint16_t channel, amqp_bytes_t body,
                                       size_t offset, size_t hold_limit,
                                       std::string* out) const {
  const size_t payload_max = frame_max_ - kFrameOverhead;
  const char* data = static_cast<const char*>(body.bytes);
  while (offset < body.len && out->size() < hold_limit) {
    size_t n = std::min(body.len - offset, payload_max);
    AppendFrameHeader(AMQP_FRAME_BODY, channel, n, out);
    out->append(data + offset, n);
    out->push_back(static_cast<char>(kFrameEnd));
    offset += n;
  }
  return offset;
}

}  // namespace amqpgw::amqp::internal
