// ExchangeTypes with a scripted probe: built-in types need no check, answers
// are remembered for their ttl, calls for a type being checked share that
// check, and too many waiting types are refused instead of queued.
#include "server/core/exchange_types.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <vector>

#include "server/base/sync.h"

namespace amqpgw::core {
namespace {

using ::testing::HasSubstr;

// Collects statuses from `done` callbacks, on any thread.
class Results {
 public:
  ExchangeTypes::Done Add() {
    return [this](absl::Status s) {
      amqpgw::MutexLock lock(&mu_);
      statuses_.push_back(std::move(s));
    };
  }
  // Waits until `n` results arrived (or 10 s).
  std::vector<absl::Status> Wait(size_t n) {
    amqpgw::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return statuses_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return statuses_;
  }

 private:
  amqpgw::Mutex mu_;
  std::vector<absl::Status> statuses_ ABSL_GUARDED_BY(mu_);
};

// A probe that knows "x-known" and blocks until released.
struct Script {
  amqpgw::Notification release;
  std::atomic<int> calls{0};
  ExchangeTypes::Probe Probe() {
    return [this](const std::string& type) -> absl::StatusOr<bool> {
      ++calls;
      release.WaitForNotification();
      if (type == "x-down") return absl::UnavailableError("no broker");
      return type == "x-known";
    };
  }
};

TEST(ExchangeTypesTest, BuiltinTypesAnswerAtOnceWithoutAProbe) {
  Script script;
  ExchangeTypes types(script.Probe());
  Results r;
  types.Check("direct", r.Add());
  types.Check("headers", r.Add());
  auto s = r.Wait(2);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_TRUE(s[0].ok());
  EXPECT_TRUE(s[1].ok());
  EXPECT_EQ(types.probes(), 0u);
}

TEST(ExchangeTypesTest, CallsForOneTypeShareOneProbeAndTheAnswerIsKept) {
  Script script;
  ExchangeTypes types(script.Probe());
  Results r;
  for (int i = 0; i < 5; ++i) types.Check("x-nope", r.Add());
  types.Check("x-known", r.Add());
  script.release.Notify();
  auto s = r.Wait(6);
  ASSERT_EQ(s.size(), 6u);
  int refused = 0;
  int ok = 0;
  for (const auto& st : s) {
    if (st.code() == absl::StatusCode::kFailedPrecondition) {
      ++refused;
      EXPECT_THAT(st.message(), HasSubstr("'x-nope'"));
    }
    if (st.ok()) ++ok;
  }
  EXPECT_EQ(refused, 5);
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(script.calls.load(), 2);
  // Remembered: answered inline, no new probe.
  Results again;
  types.Check("x-nope", again.Add());
  types.Check("x-known", again.Add());
  auto s2 = again.Wait(2);
  EXPECT_EQ(s2[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(s2[1].ok());
  EXPECT_EQ(script.calls.load(), 2);
}

TEST(ExchangeTypesTest, AnAnswerExpiresAfterItsTtl) {
  Script script;
  script.release.Notify();
  ExchangeTypes::Options o;
  o.ttl = absl::ZeroDuration();
  ExchangeTypes types(script.Probe(), o);
  Results r;
  types.Check("x-known", r.Add());
  r.Wait(1);
  types.Check("x-known", r.Add());
  auto s = r.Wait(2);
  EXPECT_TRUE(s[1].ok());
  EXPECT_EQ(script.calls.load(), 2);
}

TEST(ExchangeTypesTest, AFailedProbeIsUnavailableAndNotRemembered) {
  Script script;
  script.release.Notify();
  ExchangeTypes types(script.Probe());
  Results r;
  types.Check("x-down", r.Add());
  types.Check("x-down", r.Add());
  auto s = r.Wait(2);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s[0].message(), HasSubstr("no broker"));
  Results later;
  types.Check("x-down", later.Add());
  later.Wait(1);
  EXPECT_GE(script.calls.load(), 2);
}

TEST(ExchangeTypesTest, TooManyWaitingTypesAreRefusedAndShutdownEndsTheRest) {
  Script script;
  ExchangeTypes::Options o;
  o.max_waiting = 3;
  Results r;
  {
    ExchangeTypes types(script.Probe(), o);
    for (int i = 0; i < 5; ++i) {
      types.Check("x-t" + std::to_string(i), r.Add());
    }
    // Two were refused at once; three wait (one inside the probe).
    auto s = r.Wait(2);
    ASSERT_EQ(s.size(), 2u);
    for (const auto& st : s) {
      EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
      EXPECT_THAT(st.message(), HasSubstr("too many"));
    }
    script.release.Notify();  // the running probe ends; then the destructor
  }
  auto s = r.Wait(5);
  EXPECT_EQ(s.size(), 5u);
}

}  // namespace
}  // namespace amqpgw::core
