#include "tests/support/load.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/metrics/rpc_metrics.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

constexpr size_t kMaxSamples = 20;

}  // namespace

// --- PublisherPool ----------------------------------------------------------

PublisherPool::PublisherPool(const StubFactory& new_stub, Options options)
    : options_(std::move(options)) {
  for (int t = 0; t < options_.threads; ++t) {
    threads_.emplace_back([this, t, stub = new_stub()] {
      for (int n = t; n < options_.total && !stop_.load();
           n += options_.threads) {
        v1::PublishRequest req;
        req.set_routing_key(options_.queue);
        req.set_body(absl::StrCat(n));
        v1::PublishResponse resp;
        ::grpc::Status s =
            stub->Publish(Ctx(options_.deadline).get(), req, &resp);
        amqpgw::MutexLock lock(&mu_);
        if (s.ok()) {
          confirmed_.insert(n);
          confirmed_at_[n] = absl::Now();
          continue;
        }
        ++errors_[s.error_code()];
        if (samples_.size() < kMaxSamples) {
          samples_.push_back(
              absl::StrCat(metrics::RpcMetrics::CodeName(s.error_code()), ": ",
                           s.error_message().substr(0, 200)));
        }
      }
      finished_.fetch_add(1);
    });
  }
}

PublisherPool::~PublisherPool() { Stop(); }

void PublisherPool::Stop() {
  stop_.store(true);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool PublisherPool::WaitDone(absl::Duration timeout) {
  return WaitFor([&] { return finished_.load() == options_.threads; }, timeout);
}

size_t PublisherPool::confirmed_count() {
  amqpgw::MutexLock lock(&mu_);
  return confirmed_.size();
}

int PublisherPool::attempted() {
  amqpgw::MutexLock lock(&mu_);
  int failed = 0;
  for (const auto& [code, n] : errors_) failed += n;
  return static_cast<int>(confirmed_.size()) + failed;
}

std::set<int> PublisherPool::Confirmed() {
  amqpgw::MutexLock lock(&mu_);
  return confirmed_;
}

std::map<::grpc::StatusCode, int> PublisherPool::Errors() {
  amqpgw::MutexLock lock(&mu_);
  return errors_;
}

absl::Time PublisherPool::ConfirmedAt(int n) {
  amqpgw::MutexLock lock(&mu_);
  auto it = confirmed_at_.find(n);
  return it == confirmed_at_.end() ? absl::InfinitePast() : it->second;
}

std::vector<std::string> PublisherPool::ErrorSamples() {
  amqpgw::MutexLock lock(&mu_);
  return samples_;
}

// --- ConsumerPool -----------------------------------------------------------

ConsumerPool::ConsumerPool(const StubFactory& new_stub,
                           v1::StreamMessagesRequest request, int consumers,
                           Mode mode)
    : request_(std::move(request)), mode_(mode) {
  {
    amqpgw::MutexLock lock(&mu_);
    contexts_.resize(consumers);
    instances_.resize(consumers);
  }
  for (int i = 0; i < consumers; ++i) {
    threads_.emplace_back(&ConsumerPool::Run, this, i, new_stub());
  }
}

ConsumerPool::~ConsumerPool() { Stop(); }

void ConsumerPool::Stop() {
  stop_.store(true);
  {
    amqpgw::MutexLock lock(&mu_);
    for (auto& ctx : contexts_) {
      if (ctx != nullptr) ctx->TryCancel();
    }
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::string ConsumerPool::Subscribed(int index,
                                     const std::string& subscription_id) {
  std::string instance = subscription_id.substr(0, subscription_id.find('/'));
  amqpgw::MutexLock lock(&mu_);
  instances_[index] = instance;
  ++subscribed_;
  return instance;
}

std::map<uint64_t, int> ConsumerPool::Delivered(
    const google::protobuf::RepeatedPtrField<v1::Delivery>& deliveries) {
  std::map<uint64_t, int> ids;
  amqpgw::MutexLock lock(&mu_);
  for (const v1::Delivery& d : deliveries) {
    int n = -1;
    if (!absl::SimpleAtoi(d.body(), &n)) n = -1;
    ++counts_[n];
    // Delivered again after its ack was answered: by the broker
    // (redelivered) or as another copy of the message (a republish after
    // a publisher's connection loss: at least once).
    ack_answer_lost_.erase(n);  // it was not acked after all
    auto acked = acked_by_.find(n);
    if (acked != acked_by_.end()) {
      if (d.redelivered()) {
        ++acked_then_redelivered_[acked->second];
      } else {
        ++acked_then_copied_;
      }
    }
    ids[d.delivery_id()] = n;
  }
  return ids;
}

void ConsumerPool::AckAnswered(
    const std::map<uint64_t, int>& ids,
    const google::protobuf::RepeatedField<uint64_t>& stale,
    const std::string& instance, bool retried) {
  std::set<uint64_t> stale_ids(stale.begin(), stale.end());
  amqpgw::MutexLock lock(&mu_);
  for (const auto& [id, n] : ids) {
    if (stale_ids.count(id) == 0) {
      acked_by_[n] = instance;
    } else if (retried) {
      // Stale to an Ack sent again after an attempt failed UNAVAILABLE:
      // that attempt may have been applied with its answer lost (through a
      // balancer whose instance died). Acked, unless the message comes
      // again (then it was stale for a reconnect).
      ack_answer_lost_.insert(n);
    } else {
      ++stale_acks_;
    }
  }
}

::grpc::Status ConsumerPool::AckWithRetries(v1::Gateway::Stub& stub,
                                            const v1::AckRequest& ack,
                                            v1::AckResponse& resp,
                                            bool& retried) {
  retried = false;
  // What a client does with an Ack that failed UNAVAILABLE (the instance
  // holding the stream briefly unreachable, or reconnecting to its broker):
  // tries again with backoff, for a while. Acking twice is harmless (stale).
  // A holder that stays unreachable has died, and its stream's end (read
  // after this) voids the deliveries: the broker requeues them.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  absl::Duration backoff = absl::Milliseconds(50);
  for (int attempt = 1;; ++attempt) {
    ::grpc::Status s = stub.Ack(Ctx().get(), ack, &resp);
    if (s.error_code() != ::grpc::StatusCode::UNAVAILABLE) return s;
    {
      amqpgw::MutexLock lock(&mu_);
      ++ack_retries_;
      if (ack_error_samples_.size() < kMaxSamples) {
        ack_error_samples_.push_back(
            absl::StrCat("attempt ", attempt, ": ",
                         metrics::RpcMetrics::CodeName(s.error_code()), ": ",
                         s.error_message().substr(0, 200)));
      }
    }
    if (absl::Now() + backoff > give_up || stop_.load()) return s;
    retried = true;
    // A client's backoff, not synchronisation.
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

std::string ConsumerPool::StreamOnce(int index, v1::Gateway::Stub& stub,
                                     ::grpc::ClientContext& ctx,
                                     ::grpc::Status& end, int& deliveries) {
  const bool client_acks =
      request_.ack_mode() == v1::StreamMessagesRequest::CLIENT;
  auto reader = stub.StreamMessages(&ctx, request_);
  std::string instance, subscription;
  v1::StreamMessagesResponse ev;
  google::protobuf::RepeatedPtrField<v1::Delivery> got;
  while (reader->Read(&ev)) {
    got.Clear();
    if (ev.has_subscribed()) {
      subscription = ev.subscribed().subscription_id();
      instance = Subscribed(index, subscription);
      continue;
    }
    if (ev.has_status()) {
      CountStatus(ev.status(), instance);
      continue;
    }
    if (ev.has_delivery()) {
      *got.Add() = std::move(*ev.mutable_delivery());
    } else if (ev.has_batch()) {
      got.Swap(ev.mutable_batch()->mutable_deliveries());
    }
    if (got.empty()) continue;
    deliveries += got.size();
    std::map<uint64_t, int> ids = Delivered(got);
    if (!client_acks) continue;
    v1::AckRequest ack;
    ack.set_subscription_id(subscription);
    for (const auto& [id, n] : ids) ack.add_delivery_ids(id);
    v1::AckResponse resp;
    bool retried = false;
    ::grpc::Status s = AckWithRetries(stub, ack, resp, retried);
    if (s.ok()) {
      AckAnswered(ids, resp.stale_ids(), instance, retried);
    } else {
      amqpgw::MutexLock lock(&mu_);
      ++ack_errors_[s.error_code()];
    }
  }
  end = reader->Finish();
  return instance;
}

std::string ConsumerPool::SubscribeOnce(int index, v1::Gateway::Stub& stub,
                                        ::grpc::ClientContext& ctx,
                                        ::grpc::Status& end, int& deliveries) {
  auto rw = stub.Subscribe(&ctx);
  v1::SubscribeRequest start;
  start.mutable_start()->set_queue(request_.queue());
  start.mutable_start()->set_prefetch(request_.prefetch());
  std::string instance;
  // Delivery ids acked in-stream and not answered yet, in order.
  std::map<uint64_t, int> pending;
  if (rw->Write(start)) {
    v1::SubscribeResponse ev;
    while (rw->Read(&ev)) {
      if (ev.has_subscribed()) {
        instance = Subscribed(index, ev.subscribed().subscription_id());
      } else if (ev.has_status()) {
        CountStatus(ev.status(), instance);
      } else if (ev.has_batch()) {
        deliveries += ev.batch().deliveries_size();
        std::map<uint64_t, int> ids = Delivered(ev.batch().deliveries());
        v1::SubscribeRequest ack;
        for (const auto& [id, n] : ids) {
          ack.mutable_ack()->add_delivery_ids(id);
          pending[id] = n;
        }
        rw->Write(ack);
      } else if (ev.has_ack()) {
        std::map<uint64_t, int> answered;
        for (uint64_t id : ev.ack().applied_ids()) answered[id] = pending[id];
        for (uint64_t id : ev.ack().stale_ids()) answered[id] = pending[id];
        for (const auto& [id, n] : answered) pending.erase(id);
        AckAnswered(answered, ev.ack().stale_ids(), instance,
                    /*retried=*/false);
        if (ev.ack().failed_ids_size() > 0) {
          amqpgw::MutexLock lock(&mu_);
          ack_errors_[::grpc::StatusCode::UNKNOWN] +=
              ev.ack().failed_ids_size();
        }
      }
    }
  }
  end = rw->Finish();
  return instance;
}

void ConsumerPool::Run(int index, std::unique_ptr<v1::Gateway::Stub> stub) {
  while (!stop_.load()) {
    auto ctx = std::make_shared<::grpc::ClientContext>();
    {
      amqpgw::MutexLock lock(&mu_);
      if (stop_.load()) break;
      contexts_[index] = ctx;
    }
    ::grpc::Status s;
    int deliveries = 0;
    std::string instance =
        mode_ == Mode::kSubscribe
            ? SubscribeOnce(index, *stub, *ctx, s, deliveries)
            : StreamOnce(index, *stub, *ctx, s, deliveries);
    {
      amqpgw::MutexLock lock(&mu_);
      contexts_[index].reset();
      instances_[index].clear();
      if (!stop_.load()) {
        ends_.push_back(End{instance, s.error_code(),
                            s.error_message().substr(0, 200), deliveries});
      }
    }
    // A stream that could not even subscribe: retry after a pause (a
    // client's backoff, not synchronisation).
    if (instance.empty() && !stop_.load()) {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
}

std::vector<std::string> ConsumerPool::Instances() {
  amqpgw::MutexLock lock(&mu_);
  return instances_;
}

std::map<int, int> ConsumerPool::Counts() {
  amqpgw::MutexLock lock(&mu_);
  return counts_;
}

std::vector<ConsumerPool::End> ConsumerPool::Ends() {
  amqpgw::MutexLock lock(&mu_);
  return ends_;
}

void ConsumerPool::CountStatus(const v1::StreamStatus& status,
                               const std::string& instance) {
  amqpgw::MutexLock lock(&mu_);
  ++status_events_[v1::StreamStatus::Kind_Name(status.kind())];
  if (status.kind() == v1::StreamStatus::RECONNECTING) {
    reconnected_.insert(instance);
  }
}

std::set<std::string> ConsumerPool::ReconnectedInstances() {
  amqpgw::MutexLock lock(&mu_);
  return reconnected_;
}

std::map<std::string, int> ConsumerPool::StatusEvents() {
  amqpgw::MutexLock lock(&mu_);
  return status_events_;
}

int ConsumerPool::subscribed() {
  amqpgw::MutexLock lock(&mu_);
  return subscribed_;
}

std::set<int> ConsumerPool::Acked() {
  amqpgw::MutexLock lock(&mu_);
  std::set<int> acked;
  for (const auto& [n, instance] : acked_by_) acked.insert(n);
  acked.insert(ack_answer_lost_.begin(), ack_answer_lost_.end());
  return acked;
}

int ConsumerPool::acks_answer_lost() {
  amqpgw::MutexLock lock(&mu_);
  return static_cast<int>(ack_answer_lost_.size());
}

std::map<std::string, int> ConsumerPool::AckedThenRedelivered() {
  amqpgw::MutexLock lock(&mu_);
  return acked_then_redelivered_;
}

int ConsumerPool::acked_then_copied() {
  amqpgw::MutexLock lock(&mu_);
  return acked_then_copied_;
}

int ConsumerPool::stale_acks() {
  amqpgw::MutexLock lock(&mu_);
  return stale_acks_;
}

std::vector<std::string> ConsumerPool::AckErrorSamples() {
  amqpgw::MutexLock lock(&mu_);
  return ack_error_samples_;
}

int ConsumerPool::ack_retries() {
  amqpgw::MutexLock lock(&mu_);
  return ack_retries_;
}

std::map<::grpc::StatusCode, int> ConsumerPool::AckErrors() {
  amqpgw::MutexLock lock(&mu_);
  return ack_errors_;
}

}  // namespace amqpgw::testing
