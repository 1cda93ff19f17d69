#include "server/core/event_loop.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "server/base/check.h"
#include "server/base/sync.h"

namespace amqpgw::core {

EventLoop::EventLoop(std::string name) : name_(std::move(name)) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) std::abort();  // out of fds at start-up: nothing to do
}

EventLoop::~EventLoop() {
  Stop();
  close(wake_fd_);
}

void EventLoop::Start(IoSource* io) {
  io_ = io;
  thread_ = std::thread([this] { Run(); });
}

void EventLoop::Stop() {
  AMQPGW_DCHECK(!InLoopThread());
  if (!thread_.joinable()) return;
  stop_.store(true);
  Wake();
  thread_.join();
  amqpgw::MutexLock lock(&mu_);
  tasks_.clear();
}

void EventLoop::Post(Task task) {
  {
    amqpgw::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }
  Wake();
}

void EventLoop::Wake() {
  if (wake_pending_.exchange(true)) return;
  uint64_t one = 1;
  ssize_t r = write(wake_fd_, &one, sizeof(one));
  (void)r;
}

EventLoop::TimerId EventLoop::RunAt(absl::Time when,
                                    absl::AnyInvocable<void()> fn) {
  AMQPGW_DCHECK(InLoopThreadOrStopped());
  TimerId id = next_timer_id_++;
  timers_.emplace(std::make_pair(when, id), std::move(fn));
  timer_deadlines_[id] = when;
  return id;
}

EventLoop::TimerId EventLoop::RunAfter(absl::Duration delay,
                                       absl::AnyInvocable<void()> fn) {
  return RunAt(absl::Now() + delay, std::move(fn));
}

void EventLoop::Cancel(TimerId id) {
  AMQPGW_DCHECK(InLoopThreadOrStopped());
  auto it = timer_deadlines_.find(id);
  if (it == timer_deadlines_.end()) return;
  timers_.erase(std::make_pair(it->second, id));
  timer_deadlines_.erase(it);
}

void EventLoop::RunDueTimers() {
  absl::Time now = absl::Now();
  while (!timers_.empty() && timers_.begin()->first.first <= now) {
    auto node = timers_.extract(timers_.begin());
    timer_deadlines_.erase(node.key().second);
    std::move(node.mapped())();
  }
}

void EventLoop::RunTasks() {
  // Tasks posted while a round runs (a task's follow-up, say) run in the next
  // round of the same pass instead of after another trip through poll(); the
  // bound keeps a stream of posts from starving the I/O source.
  constexpr int kMaxRounds = 4;
  std::vector<Task> batch;
  for (int round = 0; round < kMaxRounds; ++round) {
    {
      amqpgw::MutexLock lock(&mu_);
      batch.swap(tasks_);
    }
    if (batch.empty()) break;
    for (Task& t : batch) std::move(t)();
    batch.clear();
    if (stop_.load()) break;
  }
}

void EventLoop::Run() {
  thread_id_.store(std::this_thread::get_id());
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  while (!stop_.load()) {
    RunDueTimers();
    RunTasks();
    if (stop_.load()) break;

    // Input rabbitmq-c already holds is invisible to poll(); heartbeats need
    // a call into the library at least every tick.
    absl::Time now = absl::Now();
    absl::Duration tick =
        io_ != nullptr ? io_->TickInterval() : absl::InfiniteDuration();
    if (io_ != nullptr &&
        (io_->HasBufferedInput() ||
         (tick != absl::InfiniteDuration() && now - last_io_ >= tick))) {
      last_io_ = now;
      io_->OnIo();
    }

    // Sleep unless work is left: input the library still buffers (OnIo
    // reads a bounded amount) or tasks posted since RunTasks. A poll() that
    // cannot block costs a system call per trip for nothing.
    // While the source's read pause runs its fd is left out of the poll set
    // and the pause's end bounds the sleep.
    bool io_paused = now < io_resume_;
    absl::Duration timeout = absl::ZeroDuration();
    if (io_ == nullptr || !io_->HasBufferedInput()) {
      timeout = absl::InfiniteDuration();
      if (!timers_.empty()) timeout = timers_.begin()->first.first - now;
      if (tick != absl::InfiniteDuration()) {
        timeout = std::min(timeout, last_io_ + tick - now);
      }
      if (io_paused) timeout = std::min(timeout, io_resume_ - now);
      // From here on a Post() or Stop() writes the eventfd again; what came
      // before (its wake-up skipped as pending) is seen here: a task under
      // the lock, a stop in stop_ (Stop() sets it before it wakes).
      wake_pending_.store(false);
      amqpgw::MutexLock lock(&mu_);
      if (!tasks_.empty() || stop_.load()) timeout = absl::ZeroDuration();
    }
    pollfd fds[2];
    fds[0] = {wake_fd_, POLLIN, 0};
    int nfds = 1;
    int io_fd = io_ != nullptr && !io_paused ? io_->io_fd() : -1;
    if (io_fd >= 0) {
      fds[1] = {io_fd, POLLIN, 0};
      nfds = 2;
    }
    timespec ts = absl::ToTimespec(std::max(timeout, absl::ZeroDuration()));
    int r = ppoll(fds, nfds,
                  timeout == absl::InfiniteDuration() ? nullptr : &ts, nullptr);
    if (r <= 0) continue;
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      ssize_t n = read(wake_fd_, &v, sizeof(v));
      (void)n;
    }
    if (nfds == 2 && fds[1].revents != 0) {
      last_io_ = absl::Now();
      io_->OnIo();
      absl::Duration pause = io_->ReadPause();
      if (pause > absl::ZeroDuration()) io_resume_ = last_io_ + pause;
    }
  }
  thread_id_.store(std::thread::id());
}

}  // namespace amqpgw::core
