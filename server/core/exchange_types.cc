#include "server/core/exchange_types.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/amqp/broker_rules.h"
#include "server/amqp/exchange_type_probe.h"
#include "server/base/quote.h"

namespace amqpgw::core {

ExchangeTypes::Probe ExchangeTypes::BrokerProbe(
    std::vector<amqp::BrokerAddress> brokers, amqp::OpenOptions open,
    absl::Duration timeout) {
  return [brokers = std::move(brokers), open = std::move(open),
          timeout](const std::string& type) -> absl::StatusOr<bool> {
    absl::Status last = absl::UnavailableError("no brokers configured");
    for (const amqp::BrokerAddress& b : brokers) {
      absl::StatusOr<bool> r = amqp::ProbeExchangeType(b, open, type, timeout);
      if (r.ok()) return r;
      last = r.status();
    }
    return last;
  };
}

ExchangeTypes::ExchangeTypes(Probe probe)
    : ExchangeTypes(std::move(probe), Options()) {}

ExchangeTypes::ExchangeTypes(Probe probe, Options options)
    : probe_(std::move(probe)), options_(options) {
  thread_ = std::thread([this] { Run(); });
}

ExchangeTypes::~ExchangeTypes() {
  {
    amqpgw::MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.SignalAll();
  thread_.join();
}

absl::Status ExchangeTypes::StatusOf(const std::string& type, bool exists) {
  if (exists) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the broker has no exchange type ", QuoteInput(type),
      " (is the plugin that provides it enabled?); declaring it would close "
      "the gateway's shared connection"));
}

void ExchangeTypes::Check(const std::string& type, Done done) {
  if (amqp::IsBuiltinExchangeType(type)) {
    std::move(done)(absl::OkStatus());
    return;
  }
  absl::Status answer;
  {
    amqpgw::MutexLock lock(&mu_);
    auto known = answers_.find(type);
    if (known != answers_.end() && known->second.until > absl::Now()) {
      answer = StatusOf(type, known->second.exists);
    } else if (auto w = waiting_.find(type); w != waiting_.end()) {
      w->second.push_back(std::move(done));
      return;
    } else if (stopping_ || waiting_.size() >= options_.max_waiting) {
      answer = absl::UnavailableError(
          absl::StrCat("cannot check exchange type ", QuoteInput(type),
                       " now: too many checks waiting; retry later"));
    } else {
      waiting_[type].push_back(std::move(done));
      queue_.push_back(type);
      wake_.Signal();
      return;
    }
  }
  std::move(done)(answer);
}

uint64_t ExchangeTypes::probes() const {
  amqpgw::MutexLock lock(&mu_);
  return probes_;
}

void ExchangeTypes::Remember(const std::string& type, bool exists,
                             absl::Time now) {
  if (answers_.size() >= options_.max_remembered) {
    absl::erase_if(answers_,
                   [now](const auto& a) { return a.second.until <= now; });
    if (answers_.size() >= options_.max_remembered) answers_.clear();
  }
  answers_[type] = Answer{exists, now + options_.ttl};
}

void ExchangeTypes::Run() {
  for (;;) {
    std::string type;
    {
      amqpgw::MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) wake_.Wait(&mu_);
      if (stopping_) break;
      type = std::move(queue_.front());
      queue_.pop_front();
      ++probes_;
    }
    absl::StatusOr<bool> exists = probe_(type);
    std::vector<Done> done;
    absl::Status status;
    {
      amqpgw::MutexLock lock(&mu_);
      if (exists.ok()) {
        Remember(type, *exists, absl::Now());
        status = StatusOf(type, *exists);
      } else {
        status = absl::UnavailableError(
            absl::StrCat("could not check exchange type ", QuoteInput(type),
                         ": ", exists.status().message()));
      }
      auto w = waiting_.find(type);
      if (w != waiting_.end()) {
        done = std::move(w->second);
        waiting_.erase(w);
      }
    }
    for (Done& d : done) std::move(d)(status);
  }
  // Stopping: nobody will check what still waits.
  absl::flat_hash_map<std::string, std::vector<Done>> left;
  {
    amqpgw::MutexLock lock(&mu_);
    left = std::move(waiting_);
    waiting_.clear();
    queue_.clear();
  }
  for (auto& [type, done] : left) {
    for (Done& d : done) {
      std::move(d)(absl::UnavailableError("the gateway is shutting down"));
    }
  }
}

}  // namespace amqpgw::core
