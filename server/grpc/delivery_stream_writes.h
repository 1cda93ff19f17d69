// How the consumer streams (DeliveryStream, stream_reactor.h) flush their
// writes, and which deliveries AUTO may acknowledge once a write completed.
#ifndef AMQPGW_SERVER_GRPC_DELIVERY_STREAM_WRITES_H_
#define AMQPGW_SERVER_GRPC_DELIVERY_STREAM_WRITES_H_

#include <cstdint>

#include "server/core/subscription.h"

namespace amqpgw::grpc_api {

// The flush and acknowledgement plan of one stream's writes (one write at a
// time, as gRPC allows).
//
// A write with more items queued behind it is buffer-hinted: gRPC completes
// it once it holds the bytes (without sending them) and sends them with a
// later write, so a burst of writes leaves in few HTTP/2 frames and system
// calls. The last write of a burst has no hint and is sent at once.
//
// AUTO acknowledges a delivery only once its bytes were written to the
// socket. A hinted write's completion proves nothing of the kind, so in AUTO
// the write that ends a run of hinted ones is written through (gRPC
// completes it only once its bytes, and therefore every byte of the stream
// before them, reached the socket), and its completion acknowledges every
// delivery the run carried. A run holds at most MaxHintedRun(prefetch)
// hinted writes, so that acknowledgements keep flowing while deliveries
// keep coming (the broker's window is the prefetch).
//
// Not thread-safe: lives in DeliveryStream's write slot, so only the thread
// that owns the slot (the one starting a write, then the one in
// OnWriteDone) touches it.
class DeliveryWrites {
 public:
  // Hinted writes in a run at most, whatever the prefetch.
  static constexpr uint32_t kMaxHintedRun = 64;

  struct Flush {
    bool buffer_hint = false;
    bool write_through = false;
  };

  // The longest run of hinted writes before a write-through one, for a
  // window of `prefetch` deliveries: a quarter of it (the subscription acks
  // in quarters of its window too), 1..kMaxHintedRun.
  static uint32_t MaxHintedRun(uint32_t prefetch);

  // A write starts. `last_id`: the id of the last delivery it carries (ids
  // grow along the stream), 0 when it carries none (an event); `more`:
  // items are queued behind it. Returns how to flush it.
  Flush Start(core::AckMode mode, uint32_t prefetch, uint64_t last_id,
              bool more);
  // The write started last completed; `ok` false: the stream broke. Returns
  // the id up to which AUTO may acknowledge now (every delivery of this
  // stream with an id up to it was written to the socket), 0 when nothing
  // more than before.
  uint64_t Done(bool ok);

 private:
  // The last delivery id of the writes started so far.
  uint64_t carried_ = 0;
  // Hinted writes since the last write-through one.
  uint32_t run_ = 0;
  // AUTO: the id the write in flight acknowledges when it completes; 0 when
  // it is hinted (or not AUTO).
  uint64_t acks_upto_ = 0;
  // The last id Done returned.
  uint64_t handed_ = 0;
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_DELIVERY_STREAM_WRITES_H_
