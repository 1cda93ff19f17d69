#include "server/grpc/delivery_stream_writes.h"

#include <algorithm>

namespace amqpgw::grpc_api {

uint32_t DeliveryWrites::MaxHintedRun(uint32_t prefetch) {
  return std::clamp<uint32_t>(prefetch / 4, 1, kMaxHintedRun);
}

DeliveryWrites::Flush DeliveryWrites::Start(core::AckMode mode,
                                            uint32_t prefetch, uint64_t last_id,
                                            bool more) {
  carried_ = std::max(carried_, last_id);
  acks_upto_ = 0;
  Flush flush;
  if (mode != core::AckMode::kAuto) {
    flush.buffer_hint = more;
    return flush;
  }
  if (more && run_ < MaxHintedRun(prefetch)) {
    ++run_;
    flush.buffer_hint = true;
    return flush;
  }
  run_ = 0;
  flush.write_through = true;
  acks_upto_ = carried_;
  return flush;
}

uint64_t DeliveryWrites::Done(bool ok) {
  uint64_t upto = ok ? acks_upto_ : 0;
  acks_upto_ = 0;
  if (upto <= handed_) return 0;  // nothing new (an event's write)
  handed_ = upto;
  return upto;
}

}  // namespace amqpgw::grpc_api
