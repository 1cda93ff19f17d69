// Synchronisation types for amqpgw's own code: amqpgw::Mutex, MutexLock,
// CondVar and Notification, with Abseil's interface (the subset amqpgw uses).
//
// In normal builds they ARE the Abseil types (aliases: no cost, no
// difference). Under ThreadSanitizer they are small std::mutex /
// std::condition_variable based equivalents, because Debian's Abseil is not
// built with -fsanitize=thread: its Mutex establishes no happens-before
// edges that TSan can see, so every access it protects would be reported as
// a race. The std types are intercepted by TSan, so data races in amqpgw
// code are reported and lock-protected accesses are not.
//
// Thread-safety annotations (ABSL_GUARDED_BY and friends) work with both.
// absl::Condition is used as is (amqpgw::Mutex::Await takes one).
#ifndef AMQPGW_SERVER_BASE_SYNC_H_
#define AMQPGW_SERVER_BASE_SYNC_H_

#if defined(__SANITIZE_THREAD__)
#define AMQPGW_TSAN_SYNC 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AMQPGW_TSAN_SYNC 1
#endif
#endif

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#ifdef AMQPGW_TSAN_SYNC
#include <chrono>
#include <condition_variable>
#include <mutex>
#endif

namespace amqpgw {

#ifndef AMQPGW_TSAN_SYNC

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;
using CondVar = absl::CondVar;
using Notification = absl::Notification;

#else  // AMQPGW_TSAN_SYNC

// Waits on `cv` with `lock` until `deadline` (absl::InfiniteFuture(): no
// limit); returns false on timeout.
inline bool WaitUntil(std::condition_variable& cv,
                      std::unique_lock<std::mutex>& lock, absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    cv.wait(lock);
    return true;
  }
  return cv.wait_until(lock, absl::ToChronoTime(deadline)) ==
         std::cv_status::no_timeout;
}

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  // Like absl::Mutex, an unlock lets waiters re-check their conditions.
  // (Notified before unlocking: once unlocked, the Mutex may be destroyed.)
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    changed_.notify_all();
    mu_.unlock();
  }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return mu_.try_lock();
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

  void Await(const absl::Condition& cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AwaitUntil(cond, absl::InfiniteFuture());
  }
  bool AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return AwaitUntil(cond, absl::Now() + timeout);
  }
  bool AwaitWithDeadline(const absl::Condition& cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return AwaitUntil(cond, deadline);
  }
  void LockWhen(const absl::Condition& cond) ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    Lock();
    Await(cond);
  }

 private:
  friend class CondVar;

  bool AwaitUntil(const absl::Condition& cond, absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    bool ok = true;
    while (!cond.Eval()) {
      if (!WaitUntil(changed_, lock, deadline) && !cond.Eval()) {
        ok = false;
        break;
      }
    }
    lock.release();  // still held, as with absl::Mutex
    return ok;
  }

  std::mutex mu_;
  std::condition_variable changed_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  MutexLock(Mutex* mu, const absl::Condition& cond)
      ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->LockWhen(cond);
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  void Wait(Mutex* mu) { WaitUntil(mu, absl::InfiniteFuture()); }
  // Returns true on timeout, like absl::CondVar.
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
    return WaitUntil(mu, absl::Now() + timeout);
  }
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline) {
    return WaitUntil(mu, deadline);
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  bool WaitUntil(Mutex* mu, absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    bool timed_out = !amqpgw::WaitUntil(cv_, lock, deadline);
    lock.release();
    return timed_out;
  }

  std::condition_variable cv_;
};

class Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
  }
  bool HasBeenNotified() const {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() const {
    MutexLock lock(&mu_, absl::Condition(&notified_));
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&notified_), timeout);
  }
  bool WaitForNotificationWithDeadline(absl::Time deadline) const {
    MutexLock lock(&mu_);
    return mu_.AwaitWithDeadline(absl::Condition(&notified_), deadline);
  }

 private:
  mutable Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

#endif  // AMQPGW_TSAN_SYNC

}  // namespace amqpgw

#endif  // AMQPGW_SERVER_BASE_SYNC_H_
