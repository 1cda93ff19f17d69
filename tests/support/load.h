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
  std::map<::grpc::StatusCode, int> errors_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> samples_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

// `consumers` StreamMessages readers of `request`, each with a stub of its
// own, each reopening its stream when it ends, until Stop().
class ConsumerPool {
 public:
  // A stream that ended before Stop().
  struct End {
    // The instance that served it ("" if it never got `subscribed`).
    std::string instance;
    ::grpc::StatusCode code = ::grpc::StatusCode::OK;
    std::string message;
    int deliveries = 0;
  };
  ConsumerPool(const StubFactory& new_stub, v1::StreamMessagesRequest request,
               int consumers);
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
  // Streams subscribed so far (reopened ones included).
  int subscribed() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run(int index, std::unique_ptr<v1::Gateway::Stub> stub);

  const v1::StreamMessagesRequest request_;
  std::atomic<bool> stop_{false};
  amqpgw::Mutex mu_;
  std::vector<std::shared_ptr<::grpc::ClientContext>> contexts_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> instances_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> counts_ ABSL_GUARDED_BY(mu_);
  std::vector<End> ends_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> status_events_ ABSL_GUARDED_BY(mu_);
  int subscribed_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_LOAD_H_
