// MessageGetter: GetMessages, a look at the first messages of a queue with
// basic.get, on one ConnectionWorker (the session's control connection).
//
// Each call runs on a channel of its own, opened for it and closed after it
// (at most `max_channels` at once; later calls wait for one), so a queue the
// broker refuses (404 NOT_FOUND, 403, 405: each closes the channel) fails
// that call alone. Steps, all on the worker's thread:
//   1. passive queue.declare: NOT_FOUND when the queue does not exist. A
//      queue that reports 0 ready messages is answered with an empty list
//      without any basic.get. This also keeps basic.get away from stream
//      queues, which RabbitMQ 3.10 always reports with 0 messages and on
//      which basic.get closes the whole connection (540 NOT_IMPLEMENTED).
//   2. basic.get, one at a time, until `count` messages, an empty queue
//      (get-empty, or get-ok saying none are left), or kMaxBytes of
//      messages (at least one message is always taken).
//   3. with `ack`: basic.ack (multiple) of the last delivery tag.
//   4. channel.close, and the call is answered on close-ok, once the broker
//      has handled everything sent on the channel. Without `ack` that close
//      is what puts the messages back: RabbitMQ returns the unacked messages
//      of a closed channel to their places in the queue, in order, for
//      classic and quorum queues alike (a basic.nack with requeue would
//      append them to the back of a quorum queue), and marks them
//      redelivered (quorum queues also count the delivery in
//      x-delivery-count, towards a delivery-limit).
// A call whose deadline passes, or whose connection is lost, before
// close-ok, fails; without `ack` nothing was removed (the broker puts back
// what a closed channel or connection had unacked).
//
// Threads: Get() from any thread, never blocking; `done` runs on the
// worker's thread. Construct and destroy while the worker's thread does not
// run, or on it.
#ifndef AMQPGW_SERVER_CORE_GET_MESSAGES_H_
#define AMQPGW_SERVER_CORE_GET_MESSAGES_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/amqp/connection.h"
#include "server/amqp/types.h"
#include "server/core/connection_worker.h"

namespace amqpgw::core {

struct GetRequest {
  std::string queue;
  // 1 or more (the API allows 1..1000).
  uint32_t count = 1;
  // Ack the messages taken (they leave the queue); false: put them back.
  bool ack = false;
  // Waits for a connection, and for the broker, until then.
  absl::Time deadline = absl::InfiniteFuture();
};

struct GetResult {
  // In queue order, as the broker handed them out (redelivered as it said
  // then, before this call put them back).
  std::vector<amqp::Delivery> messages;
  // Ready messages the broker counted behind the last one taken
  // (basic.get-ok), or in the queue when none was taken; without `ack` the
  // messages taken are back in front of these.
  uint32_t message_count = 0;
};

class MessageGetter : private ConnectionWorker::Observer {
 public:
  // Messages taken by one call stop at this many bytes (bodies and encoded
  // properties), give or take the last message.
  static constexpr size_t kMaxBytes = 1 << 20;

  // OK while calls may go to the broker; else the error they fail with at
  // once (the session's after Disconnect). Called on any thread.
  using Gate = std::function<absl::Status()>;
  using Done = absl::AnyInvocable<void(absl::StatusOr<GetResult>) &&>;

  // `worker` must outlive the getter.
  MessageGetter(ConnectionWorker* worker, Gate gate, int max_channels = 8);
  ~MessageGetter() override;
  MessageGetter(const MessageGetter&) = delete;
  MessageGetter& operator=(const MessageGetter&) = delete;

  void Get(GetRequest request, Done done);

 private:
  struct Op : public ConnectionWorker::ChannelHandler {
    enum class Step { kWaiting, kOpening, kInspecting, kGetting, kClosing };
    MessageGetter* owner = nullptr;
    GetRequest request;
    Done done;
    std::string what;  // "get messages from queue 'q'"
    Step step = Step::kWaiting;
    uint16_t channel = 0;
    EventLoop::TimerId timer = 0;
    bool finished = false;   // `done` has run
    bool ack_sent = false;   // basic.ack went out
    bool abandoned = false;  // finished early: close the channel when open
    size_t bytes = 0;
    uint64_t last_tag = 0;
    GetResult result;
    void OnChannelEvent(amqp::Event& event) override {
      owner->OnEvent(this, event);
    }
  };

  void OnConnected() override;
  void OnDisconnected(const absl::Status& why) override;

  void Pump();
  void OnEvent(Op* op, amqp::Event& event);
  void OnDeadline(const std::shared_ptr<Op>& op);
  // Acks (with `ack`) and closes the channel; the call ends on close-ok.
  void Settle(Op* op);
  void CloseChannel(Op* op);
  // A send that failed: the connection failed (OnDisconnected follows) or,
  // when it is still usable, nothing was sent and the call fails with `s`.
  void SendFailed(Op* op, const absl::Status& s);
  void Finish(Op* op, absl::StatusOr<GetResult> result);
  void Remove(Op* op);

  ConnectionWorker* const worker_;
  const Gate gate_;
  const size_t max_channels_;
  // Worker thread only.
  std::deque<std::shared_ptr<Op>> pending_;
  std::vector<std::shared_ptr<Op>> active_;  // each holds a channel
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_GET_MESSAGES_H_
