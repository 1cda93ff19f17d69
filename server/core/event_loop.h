// A single thread that runs posted tasks and timers and sleeps in poll() on a
// wake-up eventfd plus, optionally, one I/O source (an AMQP socket).
//
// Thread safety: Post() and Stop() may be called from any thread (Stop()
// not from the loop thread). RunAt(), RunAfter() and Cancel() only from the
// loop thread (tasks and timers run there), or while it does not run;
// checked by AMQPGW_DCHECK where those are on. An idle loop uses no CPU: it
// wakes only for a posted task, a due timer, input on the I/O source, the
// source's tick interval, or the end of the source's read pause after input.
#ifndef AMQPGW_SERVER_CORE_EVENT_LOOP_H_
#define AMQPGW_SERVER_CORE_EVENT_LOOP_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "server/base/sync.h"

namespace amqpgw::core {

class EventLoop {
 public:
  using Task = absl::AnyInvocable<void() &&>;
  using TimerId = uint64_t;

  // The I/O source a loop drives. All calls happen on the loop thread.
  class IoSource {
   public:
    virtual ~IoSource() = default;
    // The fd to poll for input, or -1 for none.
    virtual int io_fd() = 0;
    // True when input is already buffered in user space.
    virtual bool HasBufferedInput() = 0;
    // Called when io_fd() is readable or failed, input is buffered, or the
    // tick interval passed since the last call.
    virtual void OnIo() = 0;
    // Longest time between OnIo() calls (for heartbeats);
    // absl::InfiniteDuration() for none.
    virtual absl::Duration TickInterval() = 0;
    // After OnIo() ran because io_fd() was readable, the loop waits this
    // long before it polls io_fd() again (tasks, timers and ticks go on):
    // what arrives meanwhile is read in one go, at the price of up to this
    // much delay. Zero (the default): poll it again at once.
    virtual absl::Duration ReadPause() { return absl::ZeroDuration(); }
  };

  explicit EventLoop(std::string name);
  // Stops the thread if it still runs.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Starts the thread. `io` may be null; it must outlive the loop's thread.
  void Start(IoSource* io);
  // Stops the thread and joins it. Tasks posted but not run are destroyed.
  // Must not be called from the loop thread. Idempotent.
  void Stop();

  // Runs `task` on the loop thread, in posting order.
  void Post(Task task) ABSL_LOCKS_EXCLUDED(mu_);

  // Loop thread only. Timers run in deadline order; a cancelled or fired
  // timer's id is never reused.
  TimerId RunAt(absl::Time when, absl::AnyInvocable<void()> fn);
  TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn);
  void Cancel(TimerId id);

  bool InLoopThread() const {
    return std::this_thread::get_id() == thread_id_.load();
  }
  // True on the loop thread, and on any thread while the loop thread does
  // not run (before Start(), after Stop()): whoever calls then owns the
  // loop's state. For debug checks of "loop thread, or before it starts".
  bool InLoopThreadOrStopped() const {
    std::thread::id id = thread_id_.load();
    return id == std::thread::id() || id == std::this_thread::get_id();
  }
  const std::string& name() const { return name_; }

 private:
  void Run();
  void Wake();
  void RunDueTimers();
  // Runs posted tasks, and the tasks they post, for a bounded number of
  // rounds.
  void RunTasks();

  const std::string name_;
  int wake_fd_ = -1;
  IoSource* io_ = nullptr;
  std::thread thread_;
  // The loop thread's id while Run() runs, else the default id.
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<bool> stop_{false};
  std::atomic<bool> wake_pending_{false};

  amqpgw::Mutex mu_;
  std::vector<Task> tasks_ ABSL_GUARDED_BY(mu_);

  // Loop thread only.
  TimerId next_timer_id_ = 1;
  std::map<std::pair<absl::Time, TimerId>, absl::AnyInvocable<void()>> timers_;
  absl::flat_hash_map<TimerId, absl::Time> timer_deadlines_;
  absl::Time last_io_ = absl::InfinitePast();
  // io_fd() is not polled before this time (IoSource::ReadPause).
  absl::Time io_resume_ = absl::InfinitePast();
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_EVENT_LOOP_H_
