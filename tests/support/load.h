// Counted traffic for fault tests through one or several gateways:
// publishers that record which numbered messages were confirmed and how
// the others failed, and StreamMessages consumers that reopen their stream
// when it ends and record every delivery, every stream's end (on which
// instance, with which status) and the status events they saw.
//
// Thread safety: each pool runs threads of its own; its methods may be
// called from any thread.
#ifndef AMQPGW_TESTS_SUPPORT_LOAD_H_
#define AMQPGW_TESTS_SUPPORT_LOAD_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "amqpgw/v1/gateway.grpc.pb.h"
#include "server/base/sync.h"

namespace amqpgw::testing {

using StubFactory = std::function<std::unique_ptr<v1::Gateway::Stub>()>;

// Unary Publish of the numbered messages 0..total-1 (the body is the
// number) to the default exchange with routing key `queue`, from `threads`
// threads, each with a stub (a connection) of its own and one call in
// flight; thread t sends t, t + threads, ... A failed call is counted and
// its number is not sent again. A large `total` and Stop() give traffic
// for as long as a test needs.
class PublisherPool {
 public:
  struct Options {
    std::string queue;
    int threads = 4;
    int total = 1000;
    // Each call's deadline.
    absl::Duration deadline = absl::Seconds(30);
  };
  PublisherPool(const StubFactory& new_stub, Options options);
  ~PublisherPool();
  PublisherPool(const PublisherPool&) = delete;
  PublisherPool& operator=(const PublisherPool&) = delete;

  // Stops sending (calls in flight finish) and joins the threads.
  void Stop();
  // Waits until every number was sent (or Stop()).
  bool WaitDone(absl::Duration timeout);
  size_t confirmed_count() ABSL_LOCKS_EXCLUDED(mu_);
  // Calls that ended (confirmed or failed).
  int attempted() ABSL_LOCKS_EXCLUDED(mu_);
  std::set<int> Confirmed() ABSL_LOCKS_EXCLUDED(mu_);
  // When message `n`'s call returned OK (absl::InfinitePast() if it did not).
  absl::Time ConfirmedAt(int n) ABSL_LOCKS_EXCLUDED(mu_);
  // Failed calls by status code.
  std::map<::grpc::StatusCode, int> Errors() ABSL_LOCKS_EXCLUDED(mu_);
  // "CODE: message" of the first failures (at most 20).
  std::vector<std::string> ErrorSamples() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const Options options_;
  std::atomic<bool> stop_{false};
  std::atomic<int> finished_{0};
  amqpgw::Mutex mu_;
  std::set<int> confirmed_ ABSL_GUARDED_BY(mu_);
  std::map<int, absl::Time> confirmed_at_ ABSL_GUARDED_BY(mu_);
  std::map<::grpc::StatusCode, int> errors_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> samples_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

// `consumers` readers of `request`'s queue, each with a stub of its own,
// each reopening its stream when it ends, until Stop(). How they consume:
// - kStreamMessages: StreamMessages with `request` as it is; in CLIENT mode
//   each response's deliveries are acked at once with a unary Ack through
//   the same stub (behind a balancer, usually on another instance, which
//   forwards it);
// - kSubscribe: Subscribe (queue and prefetch from `request`), acking each
//   batch in-stream.
// An Ack call that fails UNAVAILABLE is tried again with backoff, as a
// client would, for up to 10 s. Acked deliveries are counted from the answers
// (applied, not stale), with the instance that held the stream; a delivery of a
// message whose ack was answered OK earlier is counted as "acked, then
// redelivered" (by that instance) when the broker marks it redelivered, else as
// a copy.
class ConsumerPool {
 public:
  enum class Mode { kStreamMessages, kSubscribe };
  // A stream that ended before Stop().
  struct End {
    // The instance that served it ("" if it never got `subscribed`).
    std::string instance;
    ::grpc::StatusCode code = ::grpc::StatusCode::OK;
    std::string message;
    int deliveries = 0;
  };
  ConsumerPool(const StubFactory& new_stub, v1::StreamMessagesRequest request,
               int consumers, Mode mode = Mode::kStreamMessages);
  ~ConsumerPool();
  ConsumerPool(const ConsumerPool&) = delete;
  ConsumerPool& operator=(const ConsumerPool&) = delete;

  // Cancels the open streams and joins the threads.
  void Stop();
  // The instance serving each consumer's open stream ("" while it has
  // none, or before `subscribed`).
  std::vector<std::string> Instances() ABSL_LOCKS_EXCLUDED(mu_);
  // Body number -> times delivered (bodies that are not numbers: key -1).
  std::map<int, int> Counts() ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<End> Ends() ABSL_LOCKS_EXCLUDED(mu_);
  // StreamStatus kinds seen ("RECONNECTING" -> 2, ...).
  std::map<std::string, int> StatusEvents() ABSL_LOCKS_EXCLUDED(mu_);
  // The instances whose streams told RECONNECTING (their broker connection
  // was lost, e.g. with a stopped node).
  std::set<std::string> ReconnectedInstances() ABSL_LOCKS_EXCLUDED(mu_);
  // Streams subscribed so far (reopened ones included).
  int subscribed() ABSL_LOCKS_EXCLUDED(mu_);
  // Body numbers whose ack was answered applied, or answered stale to an Ack
  // sent again after an attempt failed UNAVAILABLE, and not delivered since
  // (acks_answer_lost()).
  std::set<int> Acked() ABSL_LOCKS_EXCLUDED(mu_);
  // Of those, the ones answered stale after an attempt that failed: most
  // likely applied by that attempt, whose answer was lost (an instance
  // killed on the way back).
  int acks_answer_lost() ABSL_LOCKS_EXCLUDED(mu_);
  // Deliveries of a message whose ack had been answered applied before, by
  // the instance that held the stream the ack was for.
  std::map<std::string, int> AckedThenRedelivered() ABSL_LOCKS_EXCLUDED(mu_);
  // Fresh copies (not `redelivered`) of a message acked before: published
  // twice (a republish after a connection loss).
  int acked_then_copied() ABSL_LOCKS_EXCLUDED(mu_);
  // Acks answered stale (the delivery's channel was gone: the broker
  // requeued it) and failed Ack calls by status code.
  int stale_acks() ABSL_LOCKS_EXCLUDED(mu_);
  std::map<::grpc::StatusCode, int> AckErrors() ABSL_LOCKS_EXCLUDED(mu_);
  // Ack calls (StreamMessages mode) answered UNAVAILABLE and tried again
  // (each attempt counts), and the first of their errors.
  int ack_retries() ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::string> AckErrorSamples() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One stream from open to end; returns the instance that served it.
  std::string StreamOnce(int index, v1::Gateway::Stub& stub,
                         ::grpc::ClientContext& ctx, ::grpc::Status& end,
                         int& deliveries);
  std::string SubscribeOnce(int index, v1::Gateway::Stub& stub,
                            ::grpc::ClientContext& ctx, ::grpc::Status& end,
                            int& deliveries);
  void Run(int index, std::unique_ptr<v1::Gateway::Stub> stub);
  // Sends `ack`, again with backoff while it fails UNAVAILABLE (for up to
  // 10 s); returns the last answer, and in `retried` whether it was sent
  // more than once.
  ::grpc::Status AckWithRetries(v1::Gateway::Stub& stub,
                                const v1::AckRequest& ack,
                                v1::AckResponse& resp, bool& retried)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records a status event of a stream served by `instance`.
  void CountStatus(const v1::StreamStatus& status, const std::string& instance)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records a `subscribed` event; returns the instance.
  std::string Subscribed(int index, const std::string& subscription_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records deliveries; returns delivery id -> body number.
  std::map<uint64_t, int> Delivered(
      const google::protobuf::RepeatedPtrField<v1::Delivery>& deliveries)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records the answer to acking `ids` (applied unless in `stale`) of a
  // stream held by `instance`; `retried`: the Ack had been sent before and
  // failed UNAVAILABLE.
  void AckAnswered(const std::map<uint64_t, int>& ids,
                   const google::protobuf::RepeatedField<uint64_t>& stale,
                   const std::string& instance, bool retried)
      ABSL_LOCKS_EXCLUDED(mu_);

  const v1::StreamMessagesRequest request_;
  const Mode mode_;
  std::atomic<bool> stop_{false};
  amqpgw::Mutex mu_;
  std::vector<std::shared_ptr<::grpc::ClientContext>> contexts_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> instances_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> counts_ ABSL_GUARDED_BY(mu_);
  std::vector<End> ends_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> status_events_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> reconnected_ ABSL_GUARDED_BY(mu_);
  int subscribed_ ABSL_GUARDED_BY(mu_) = 0;
  // Body number -> the instance whose stream it was acked on.
  std::map<int, std::string> acked_by_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> acked_then_redelivered_ ABSL_GUARDED_BY(mu_);
  int acked_then_copied_ ABSL_GUARDED_BY(mu_) = 0;
  int stale_acks_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<int> ack_answer_lost_ ABSL_GUARDED_BY(mu_);
  std::map<::grpc::StatusCode, int> ack_errors_ ABSL_GUARDED_BY(mu_);
  int ack_retries_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> ack_error_samples_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_LOAD_H_
