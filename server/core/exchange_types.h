// ExchangeTypes: whether the broker has the exchange type a DeclareExchange
// asks for (custom_type, e.g. a plugin's "x-delayed-message").
//
// exchange.declare with a type the broker does not have closes the whole
// connection (503 COMMAND_INVALID), so the shared control connection must
// never be the one to find out. Each type that is not built in is checked on
// a short-lived connection of its own that the broker may close
// (amqp::ProbeExchangeType), one check at a time on this class's own thread,
// and the answer is remembered for Options::ttl (a plugin may be enabled or
// disabled meanwhile). Calls for a type being checked wait for that check.
//
// Thread safety: Check() from any thread; it never blocks. `done` runs inline
// (built-in or remembered types, or too many checks waiting) or on the
// checker's thread, and must not block.
#ifndef AMQPGW_SERVER_CORE_EXCHANGE_TYPES_H_
#define AMQPGW_SERVER_CORE_EXCHANGE_TYPES_H_

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/amqp/connection.h"
#include "server/base/sync.h"

namespace amqpgw::core {

class ExchangeTypes {
 public:
  // Asks the broker: true when it has `type`, false when not, an error when
  // it could not be asked. Runs on the checker's thread; may block.
  using Probe = absl::AnyInvocable<absl::StatusOr<bool>(const std::string&)>;
  using Done = absl::AnyInvocable<void(absl::Status) &&>;

  struct Options {
    // How long an answer is remembered.
    absl::Duration ttl = absl::Minutes(1);
    // Distinct types waiting for a check; beyond, Check answers UNAVAILABLE.
    size_t max_waiting = 64;
    // Answers remembered; beyond, expired ones are dropped, then all.
    size_t max_remembered = 1024;
  };

  // A Probe that asks `brokers` in order until one answers (each bounded by
  // open.connect_timeout and `timeout`).
  static Probe BrokerProbe(std::vector<amqp::BrokerAddress> brokers,
                           amqp::OpenOptions open,
                           absl::Duration timeout = absl::Seconds(5));

  explicit ExchangeTypes(Probe probe);
  ExchangeTypes(Probe probe, Options options);
  // Joins the thread; checks still waiting get UNAVAILABLE.
  ~ExchangeTypes();
  ExchangeTypes(const ExchangeTypes&) = delete;
  ExchangeTypes& operator=(const ExchangeTypes&) = delete;

  // `done` gets OK when the broker has `type` (built-in types at once),
  // FAILED_PRECONDITION when it has not, UNAVAILABLE when it could not be
  // asked or too many checks wait.
  void Check(const std::string& type, Done done) ABSL_LOCKS_EXCLUDED(mu_);

  // Probes run so far (for tests).
  uint64_t probes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Answer {
    bool exists = false;
    absl::Time until;
  };

  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  static absl::Status StatusOf(const std::string& type, bool exists);
  void Remember(const std::string& type, bool exists, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Probe probe_;  // checker thread only
  const Options options_;
  mutable amqpgw::Mutex mu_;
  amqpgw::CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t probes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, Answer> answers_ ABSL_GUARDED_BY(mu_);
  // Types to check, oldest first, and the calls waiting for each.
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<Done>> waiting_
      ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_EXCHANGE_TYPES_H_
