// Helpers for core unit tests that drive a ConnectionWorker over the fake
// connection (server/amqp/testing/fake_connection.h). Every wait is woken by
// what it waits for and bounded by a deadline; nothing sleeps.
#ifndef AMQPGW_SERVER_CORE_TESTING_WORKER_TESTING_H_
#define AMQPGW_SERVER_CORE_TESTING_WORKER_TESTING_H_

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/amqp/testing/fake_connection.h"
#include "server/base/sync.h"
#include "server/core/connection_worker.h"

namespace amqpgw::core::testing {

using amqp::testing::FakeBroker;
using amqp::testing::FakePeer;
using amqp::testing::kWaitTimeout;
using amqp::testing::Sent;

// Runs `fn` on the worker's thread and returns its result. A worker that
// does not run it within kWaitTimeout is a hung test: abort with a message
// rather than let `fn` run later on a dead stack frame.
template <typename Fn>
auto RunOn(ConnectionWorker& worker, Fn fn) -> std::invoke_result_t<Fn&> {
  using R = std::invoke_result_t<Fn&>;
  amqpgw::Notification done;
  if constexpr (std::is_void_v<R>) {
    worker.Post([&] {
      fn();
      done.Notify();
    });
    if (!done.WaitForNotificationWithTimeout(kWaitTimeout)) {
      std::fprintf(stderr, "RunOn: worker %s did not run the task\n",
                   worker.name().c_str());
      std::abort();
    }
  } else {
    std::optional<R> result;
    worker.Post([&] {
      result.emplace(fn());
      done.Notify();
    });
    if (!done.WaitForNotificationWithTimeout(kWaitTimeout)) {
      std::fprintf(stderr, "RunOn: worker %s did not run the task\n",
                   worker.name().c_str());
      std::abort();
    }
    return *std::move(result);
  }
}

// A status with the same code and message and a representation of its own,
// for a test thread to keep from a worker's callback. A plain copy shares
// the worker's reference-counted representation, which Abseil's library
// (not built for TSan) frees without TSan seeing it synchronise with the
// test's reads.
inline absl::Status OwnCopy(const absl::Status& s) {
  return absl::Status(s.code(), s.message());
}

// Waits until the worker has read every event `peer` holds, handled them,
// and run the tasks they posted, round after round until a round changes
// nothing (no event left, nothing more sent). For assertions that something
// did NOT happen.
inline bool Settle(ConnectionWorker& worker, FakePeer& peer) {
  for (int round = 0; round < 100; ++round) {
    if (!peer.WaitUntilRead()) return false;
    size_t sent = peer.sent().size();
    // Tasks posted by the handlers run before the second barrier.
    RunOn(worker, [] {});
    RunOn(worker, [] {});
    if (peer.WaitUntilRead(absl::ZeroDuration()) &&
        peer.sent().size() == sent) {
      return true;
    }
  }
  return false;
}

// Values handed over from worker callbacks to the test thread, in order.
template <typename T>
class Mailbox {
 public:
  void Put(T value) {
    amqpgw::MutexLock lock(&mu_);
    items_.push_back(std::move(value));
    changed_.SignalAll();
  }
  // The oldest value, waiting for one up to `timeout`.
  std::optional<T> Take(absl::Duration timeout = kWaitTimeout) {
    amqpgw::MutexLock lock(&mu_);
    if (!WaitLocked(1, absl::Now() + timeout)) return std::nullopt;
    std::optional<T> value;
    value.emplace(std::move(items_.front()));
    items_.pop_front();
    return value;
  }
  // Waits until `n` values are held; true if they are.
  bool WaitForSize(size_t n, absl::Duration timeout = kWaitTimeout) {
    amqpgw::MutexLock lock(&mu_);
    return WaitLocked(n, absl::Now() + timeout);
  }
  size_t size() const {
    amqpgw::MutexLock lock(&mu_);
    return items_.size();
  }
  std::vector<T> TakeAll() {
    amqpgw::MutexLock lock(&mu_);
    std::vector<T> out(std::make_move_iterator(items_.begin()),
                       std::make_move_iterator(items_.end()));
    items_.clear();
    return out;
  }

 private:
  bool WaitLocked(size_t n, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (items_.size() < n) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) {
        return items_.size() >= n;
      }
    }
    return true;
  }

  mutable amqpgw::Mutex mu_;
  amqpgw::CondVar changed_;
  std::deque<T> items_ ABSL_GUARDED_BY(mu_);
};

// A broker address for fake brokers: "nodeN:5672".
inline amqp::BrokerAddress FakeAddress(int n) {
  amqp::BrokerAddress a;
  a.host = "node" + std::to_string(n);
  a.port = 5672;
  return a;
}

// Worker options for tests: fake brokers, quick backoff.
inline ConnectionWorker::Options FakeWorkerOptions(
    FakeBroker& broker, std::vector<amqp::BrokerAddress> brokers,
    std::string name = "test") {
  ConnectionWorker::Options o;
  o.name = std::move(name);
  o.brokers = std::move(brokers);
  o.factory = broker.factory();
  o.open.connect_timeout = kWaitTimeout;
  o.backoff.initial = absl::Milliseconds(1);
  o.backoff.max = absl::Milliseconds(20);
  o.close_timeout = absl::Milliseconds(100);
  return o;
}

// A worker named `name` on fake brokers (FakeWorkerOptions), not started yet:
// a fixture attaches the worker's users (Publisher, ConsumerPool, ...) first,
// then calls StartAndConnect.
inline std::unique_ptr<ConnectionWorker> NewFakeWorker(
    FakeBroker& broker, std::string name,
    std::vector<amqp::BrokerAddress> brokers = {FakeAddress(1)}) {
  return std::make_unique<ConnectionWorker>(
      FakeWorkerOptions(broker, std::move(brokers), std::move(name)), [] {});
}

// Starts and enables `worker` and waits for its first connection: that
// connection's peer, or nullptr when none came within kWaitTimeout.
inline std::shared_ptr<FakePeer> StartAndConnect(ConnectionWorker& worker,
                                                 FakeBroker& broker) {
  worker.Start();
  worker.Enable();
  return broker.WaitForPeer(worker.name());
}

}  // namespace amqpgw::core::testing

#endif  // AMQPGW_SERVER_CORE_TESTING_WORKER_TESTING_H_
