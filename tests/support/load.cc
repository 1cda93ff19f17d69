#include "tests/support/load.h"

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

std::vector<std::string> PublisherPool::ErrorSamples() {
  amqpgw::MutexLock lock(&mu_);
  return samples_;
}

// --- ConsumerPool -----------------------------------------------------------

ConsumerPool::ConsumerPool(const StubFactory& new_stub,
                           v1::StreamMessagesRequest request, int consumers)
    : request_(std::move(request)) {
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

void ConsumerPool::Run(int index, std::unique_ptr<v1::Gateway::Stub> stub) {
  while (!stop_.load()) {
    auto ctx = std::make_shared<::grpc::ClientContext>();
    {
      amqpgw::MutexLock lock(&mu_);
      if (stop_.load()) break;
      contexts_[index] = ctx;
    }
    auto reader = stub->StreamMessages(ctx.get(), request_);
    std::string instance;
    int deliveries = 0;
    v1::StreamMessagesResponse ev;
    auto count = [&](const v1::Delivery& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      int n = -1;
      if (!absl::SimpleAtoi(d.body(), &n)) n = -1;
      ++counts_[n];
      ++deliveries;
    };
    while (reader->Read(&ev)) {
      amqpgw::MutexLock lock(&mu_);
      if (ev.has_subscribed()) {
        const std::string& id = ev.subscribed().subscription_id();
        instance = id.substr(0, id.find('/'));
        instances_[index] = instance;
        ++subscribed_;
      } else if (ev.has_delivery()) {
        count(ev.delivery());
      } else if (ev.has_batch()) {
        for (const v1::Delivery& d : ev.batch().deliveries()) count(d);
      } else if (ev.has_status()) {
        ++status_events_[v1::StreamStatus::Kind_Name(ev.status().kind())];
      }
    }
    ::grpc::Status s = reader->Finish();
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

std::map<std::string, int> ConsumerPool::StatusEvents() {
  amqpgw::MutexLock lock(&mu_);
  return status_events_;
}

int ConsumerPool::subscribed() {
  amqpgw::MutexLock lock(&mu_);
  return subscribed_;
}

}  // namespace amqpgw::testing
