// Internal to server/amqp: encodes basic.publish frames into memory, so that
// a run of publishes leaves in one write instead of rabbitmq-c's three
// send() calls per message. Only server/amqp/*.cc may include this header.
#ifndef AMQPGW_SERVER_AMQP_PUBLISH_FRAMES_H_
#define AMQPGW_SERVER_AMQP_PUBLISH_FRAMES_H_

#include <amqp.h>
#include <amqp_framing.h>

#include <cstdint>
#include <memory>
#include <string>

namespace amqpgw::amqp::internal {

// Appends one message's frames (basic.publish, the content header, and body
// frames of at most frame_max - 8 bytes each) to a buffer: byte for byte what
// amqp_basic_publish() writes for the same arguments.
//
// Thread safety: none; one per connection, used by its owner thread.
class PublishFrameEncoder {
 public:
  // `frame_max`: the connection's negotiated frame_max (at least 4096, the
  // protocol's minimum).
  explicit PublishFrameEncoder(uint32_t frame_max);
  PublishFrameEncoder(const PublishFrameEncoder&) = delete;
  PublishFrameEncoder& operator=(const PublishFrameEncoder&) = delete;

  // Appends one message's frames to *out in two steps, so that a large
  // body need not be held whole. AppendHead appends the method and content
  // header frames; it returns AMQP_STATUS_OK, or rabbitmq-c's encoder error
  // (a method or properties that do not fit in one frame, a string longer
  // than 255 bytes) with *out unchanged. AppendBody then appends body
  // frames from body[offset] on, until the body ends or *out holds at least
  // `hold_limit` bytes, and returns the offset reached (body.len when done).
  // Call it again from that offset after writing *out away.
  int AppendHead(uint16_t channel, const amqp_basic_publish_t& method,
                 const amqp_basic_properties_t& properties, uint64_t body_size,
                 std::string* out);
  size_t AppendBody(uint16_t channel, amqp_bytes_t body, size_t offset,
                    size_t hold_limit, std::string* out) const;

 private:
  // Appends one frame to *out: its header, `payload` and the frame-end byte.
  void AppendFrame(uint8_t type, uint16_t channel, const uint8_t* payload,
                   size_t size, std::string* out);

  const uint32_t frame_max_;
  // One frame's payload, as in rabbitmq-c's own outbound buffer.
  std::unique_ptr<uint8_t[]> scratch_;
};

}  // namespace amqpgw::amqp::internal

#endif  // AMQPGW_SERVER_AMQP_PUBLISH_FRAMES_H_
