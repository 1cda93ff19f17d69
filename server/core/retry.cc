#include "server/core/retry.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace amqpgw::core {
namespace {

constexpr char kPrefix[] = "amqpgw.retry.";
// "." and the longest delay in ms (86400000).
constexpr size_t kSuffixBytes = 1 + 8;
constexpr size_t kMaxQueueBytes = 255 - (sizeof(kPrefix) - 1) - kSuffixBytes;

// Sets `key` to `value`, in place when present.
void SetField(amqp::FieldTable& t, absl::string_view key,
              amqp::FieldValue value) {
  for (auto& [k, v] : t) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  t.emplace_back(std::string(key), std::move(value));
}

void EraseField(amqp::FieldTable& t, absl::string_view key) {
  t.erase(std::remove_if(t.begin(), t.end(),
                         [&](const auto& kv) { return kv.first == key; }),
          t.end());
}

// The delivery's headers for a copy: everything but the queue's own count.
amqp::Properties CopyProperties(const amqp::Delivery& d, uint32_t attempt) {
  amqp::Properties p = d.properties;
  if (!p.headers.has_value()) p.headers.emplace();
  EraseField(*p.headers, "x-delivery-count");
  SetField(*p.headers, kAttemptHeader, int64_t{attempt});
  return p;
}

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

}  // namespace

std::string DelayQueueName(absl::string_view queue, absl::Duration delay) {
  return absl::StrCat(kPrefix, queue, ".", Millis(delay));
}

absl::Status CheckRetryQueue(absl::string_view field, absl::string_view queue) {
  if (queue.size() <= kMaxQueueBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": retries need a queue name of at most ",
                   kMaxQueueBytes, " bytes (the delay queue '", kPrefix,
                   "<queue>.<delay ms>' must fit "
                   "AMQP's 255), got ",
                   queue.size()));
}

absl::Status CheckRetryDelay(absl::string_view field, absl::Duration delay) {
  if (delay >= absl::ZeroDuration() && delay <= kMaxRetryDelay) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": must be 0 .. 24h, got ", absl::FormatDuration(delay)));
}

absl::Status CheckRetryPolicy(const RetryPolicy& p) {
  if (absl::Status s =
          CheckRetryDelay("retry_policy.initial_backoff", p.initial_backoff);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckRetryDelay("retry_policy.max_backoff", p.max_backoff);
      !s.ok()) {
    return s;
  }
  if (p.max_backoff < p.initial_backoff) {
    return absl::InvalidArgumentError(
        "retry_policy.max_backoff: must not be less than initial_backoff");
  }
  if (!std::isfinite(p.multiplier) || p.multiplier < 1 || p.multiplier > 100) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "retry_policy.multiplier: must be 1 .. 100 (0 for the default 2), "
        "got %g",
        p.multiplier));
  }
  if (!std::isfinite(p.jitter) || p.jitter < 0 || p.jitter > 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "retry_policy.jitter: must be 0 .. 1, got %g", p.jitter));
  }
  return absl::OkStatus();
}

absl::Duration PolicyDelay(const RetryPolicy& p, uint32_t attempt,
                           double random01) {
  double ms =
      static_cast<double>(Millis(p.initial_backoff)) *
      std::pow(p.multiplier, std::max<int64_t>(0, int64_t{attempt} - 1));
  ms = std::min(ms, static_cast<double>(Millis(p.max_backoff)));
  if (p.jitter > 0) ms *= 1 - p.jitter * std::clamp(random01, 0.0, 1.0);
  int64_t n = static_cast<int64_t>(ms);
  if (p.jitter > 0 && n >= 100) {
    // Two significant digits: 1234 -> 1200.
    int64_t unit = 1;
    while (n / unit >= 100) unit *= 10;
    n = n / unit * unit;
  }
  return absl::Milliseconds(n);
}

amqp::QueueDeclareArgs DelayQueueArgs(absl::string_view queue,
                                      absl::Duration delay) {
  amqp::QueueDeclareArgs a;
  a.name = DelayQueueName(queue, delay);
  a.durable = true;
  a.arguments = {
      {"x-message-ttl", int64_t{Millis(delay)}},
      {"x-dead-letter-exchange", std::string()},
      {"x-dead-letter-routing-key", std::string(queue)},
      {"x-expires", int64_t{Millis(delay + kDelayQueueLease)}},
  };
  return a;
}

amqp::OutgoingMessage RetryCopy(const amqp::Delivery& d,
                                absl::string_view queue, absl::Duration delay,
                                uint32_t attempt) {
  amqp::OutgoingMessage m;
  m.exchange = "";
  m.routing_key = DelayQueueName(queue, delay);
  m.mandatory = true;
  m.properties = CopyProperties(d, attempt);
  m.body = d.body;
  return m;
}

amqp::OutgoingMessage DeadLetterCopy(const amqp::Delivery& d,
                                     const DeadLetterTarget& target,
                                     absl::string_view queue, uint32_t attempt,
                                     absl::string_view error) {
  amqp::OutgoingMessage m;
  m.exchange = target.exchange;
  m.routing_key =
      target.routing_key.empty() ? d.routing_key : target.routing_key;
  m.mandatory = true;
  m.properties = CopyProperties(d, attempt);
  amqp::FieldTable& h = *m.properties.headers;
  SetField(h, kReasonHeader, std::string(kReasonMaxAttempts));
  SetField(h, kQueueHeader, std::string(queue));
  if (!error.empty()) {
    SetField(h, kErrorHeader,
             std::string(error.substr(0, kMaxRetryErrorBytes)));
  } else {
    EraseField(h, kErrorHeader);
  }
  m.body = d.body;
  return m;
}

bool IsConsumerTimeout(uint16_t reply_code, absl::string_view reply_text) {
  return reply_code == 406 &&
         absl::StrContains(reply_text, "delivery acknowledgement") &&
         absl::StrContains(reply_text, "timed out");
}

absl::Status ConsumerTimeoutStatus(absl::string_view queue,
                                   uint64_t delivery_id,
                                   absl::string_view reply_text) {
  std::string which = delivery_id == 0 ? std::string("a delivery")
                                       : absl::StrCat("delivery ", delivery_id);
  return absl::FailedPreconditionError(absl::StrCat(
      which, " of queue '", queue,
      "' stayed unacknowledged longer than the broker's consumer_timeout, "
      "so RabbitMQ closed the stream's channel (its unacknowledged messages "
      "went back to the queue): ack sooner (RETRY a message you cannot "
      "finish in time), or raise consumer_timeout (milliseconds) in "
      "rabbitmq.conf; with a retry_policy the stream subscribes again "
      "instead of ending. The broker said: ",
      reply_text.substr(0, 200)));
}

void Retrier::Retry(const amqp::Delivery& d, const std::string& queue,
                    absl::Duration delay, uint32_t attempt, absl::Time deadline,
                    Done done) {
  amqp::OutgoingMessage m = RetryCopy(d, queue, delay, attempt);
  std::string name = m.routing_key;
  bool fresh;
  {
    amqpgw::MutexLock lock(&mu_);
    auto it = declared_.find(name);
    fresh = it != declared_.end() &&
            absl::Now() - it->second < kDelayQueueRedeclare;
  }
  if (fresh) {
    PublishOne(std::move(m), deadline, std::move(name), std::move(done));
    return;
  }
  auto message = std::make_shared<amqp::OutgoingMessage>(std::move(m));
  absl::Time declared_at = absl::Now();
  declare_(DelayQueueArgs(queue, delay), deadline,
           [this, message, deadline, name, declared_at,
            done = std::move(done)](absl::Status s) mutable {
             if (!s.ok()) {
               std::move(done)(absl::Status(
                   s.code(), absl::StrCat("declare the delay queue '", name,
                                          "': ", s.message())));
               return;
             }
             {
               amqpgw::MutexLock lock(&mu_);
               if (declared_.size() > 10000) declared_.clear();
               declared_[name] = declared_at;
             }
             PublishOne(std::move(*message), deadline, name, std::move(done));
           });
}

void Retrier::DeadLetter(const amqp::Delivery& d,
                         const DeadLetterTarget& target,
                         const std::string& queue, uint32_t attempt,
                         absl::string_view error, absl::Time deadline,
                         Done done) {
  PublishOne(DeadLetterCopy(d, target, queue, attempt, error), deadline, "",
             std::move(done));
}

void Retrier::PublishOne(amqp::OutgoingMessage m, absl::Time deadline,
                         std::string delay_queue, Done done) {
  std::vector<amqp::OutgoingMessage> messages;
  messages.push_back(std::move(m));
  auto shared_done = std::make_shared<Done>(std::move(done));
  auto batch = std::make_shared<PublishBatch>(
      std::move(messages), deadline,
      [this, shared_done, delay_queue](PublishBatch& b) {
        absl::Status s = b.result(0).status;
        if (!s.ok() && !delay_queue.empty()) {
          // Deleted behind the gateway's back (NO_ROUTE): declare it again
          // next time.
          amqpgw::MutexLock lock(&mu_);
          declared_.erase(delay_queue);
        }
        std::move (*shared_done)(std::move(s));
      });
  absl::Status s = publish_(batch);
  if (!s.ok()) std::move (*shared_done)(std::move(s));
}

}  // namespace amqpgw::core
