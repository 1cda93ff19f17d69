// Test helpers for streams and continuous traffic through a gateway.
#ifndef AMQPGW_TESTS_SUPPORT_STREAM_READER_H_
#define AMQPGW_TESTS_SUPPORT_STREAM_READER_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "amqpgw/v1/gateway.grpc.pb.h"
#include "tests/support/gateway_fixture.h"

namespace amqpgw::testing {

// A server stream read on a thread of its own. deliveries() has those of
// `delivery` and of `batch` events alike, in order; events() has each event
// as it came.
class StreamReader {
 public:
  StreamReader(v1::Gateway::Stub* stub, v1::StreamMessagesRequest request,
               absl::Duration timeout = absl::Seconds(120))
      : ctx_(Ctx(timeout)) {
    reader_ = stub->StreamMessages(ctx_.get(), request);
    thread_ = std::thread([this] {
      v1::StreamMessagesResponse ev;
      while (reader_->Read(&ev)) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(ev);
        if (ev.has_delivery()) deliveries_.push_back(ev.delivery());
        for (const v1::Delivery& d : ev.batch().deliveries()) {
          deliveries_.push_back(d);
        }
        cv_.notify_all();
      }
      ::grpc::Status s = reader_->Finish();
      std::lock_guard<std::mutex> lock(mu_);
      status_ = s;
      done_ = true;
      cv_.notify_all();
    });
  }
  ~StreamReader() {
    ctx_->TryCancel();
    thread_.join();
  }

  bool WaitDeliveries(size_t n, absl::Duration timeout = absl::Seconds(60)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoSeconds(timeout), [&] {
      return deliveries_.size() >= n || done_;
    }) && deliveries_.size() >= n;
  }
  bool WaitSubscribed(absl::Duration timeout = absl::Seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoSeconds(timeout),
                 [&] { return !subscription_id_locked().empty() || done_; });
    return !subscription_id_locked().empty();
  }
  bool WaitEvent(
      const std::function<bool(const v1::StreamMessagesResponse&)>& f,
      absl::Duration timeout = absl::Seconds(60)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoSeconds(timeout), [&] {
      for (const auto& e : events_) {
        if (f(e)) return true;
      }
      return done_;
    }) && std::any_of(events_.begin(), events_.end(), f);
  }
  ::grpc::Status WaitDone(absl::Duration timeout = absl::Seconds(60)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoSeconds(timeout), [&] { return done_; });
    return done_ ? status_
                 : ::grpc::Status(::grpc::StatusCode::DEADLINE_EXCEEDED,
                                  "stream still open");
  }
  void Cancel() { ctx_->TryCancel(); }

  std::vector<v1::Delivery> deliveries() {
    std::lock_guard<std::mutex> lock(mu_);
    return deliveries_;
  }
  std::vector<v1::StreamMessagesResponse> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  std::string subscription_id() {
    std::lock_guard<std::mutex> lock(mu_);
    return subscription_id_locked();
  }

 private:
  std::string subscription_id_locked() {
    for (const auto& e : events_) {
      if (e.has_subscribed()) return e.subscribed().subscription_id();
    }
    return "";
  }

  std::unique_ptr<::grpc::ClientContext> ctx_;
  std::unique_ptr<::grpc::ClientReader<v1::StreamMessagesResponse>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::StreamMessagesResponse> events_;
  std::vector<v1::Delivery> deliveries_;
  ::grpc::Status status_;
  bool done_ = false;
};

// Publishes numbered messages ("<first>", "<first+1>", ...) to `queue` from a
// thread of its own, in batches of `batch` (1: unary Publish), and records
// which ones the gateway confirmed (OK). Errors are expected during faults;
// the next attempt uses new numbers.
class Traffic {
 public:
  Traffic(std::unique_ptr<v1::Gateway::Stub> stub, std::string queue,
          int batch = 20, int first = 0);
  ~Traffic();
  void Stop();
  std::set<int> confirmed();
  int errors() const { return errors_.load(); }

 private:
  std::unique_ptr<v1::Gateway::Stub> stub_;
  const std::string queue_;
  const int batch_;
  std::atomic<bool> stop_{false};
  std::atomic<int> errors_{0};
  std::mutex mu_;
  std::set<int> confirmed_;
  std::thread thread_;
};

// Counts how often each numbered body was delivered.
std::map<int, int> CountBodies(const std::vector<v1::Delivery>& deliveries);

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_STREAM_READER_H_
