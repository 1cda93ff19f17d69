#include "server/web/thread_pool.h"

#include <thread>
#include <utility>

#include "server/base/sync.h"

namespace amqpgw::web {

ElasticThreadPool::ElasticThreadPool(size_t max_threads, size_t keep_idle,
                                     absl::Duration idle_timeout)
    : max_threads_(max_threads < 1 ? 1 : max_threads),
      keep_idle_(keep_idle),
      idle_timeout_(idle_timeout) {}

ElasticThreadPool::~ElasticThreadPool() { Shutdown(); }

void ElasticThreadPool::Enqueue(std::function<void()> job) {
  State& s = *state_;
  amqpgw::MutexLock lock(&s.mu);
  s.jobs.push_back(std::move(job));
  // Idle threads take queued jobs one each; start a thread for the rest.
  if (s.jobs.size() > s.idle && s.threads < max_threads_ && !s.shutdown) {
    ++s.threads;
    std::thread(&ElasticThreadPool::Worker, state_, keep_idle_, idle_timeout_)
        .detach();
  } else {
    s.work.Signal();
  }
}

void ElasticThreadPool::Worker(std::shared_ptr<State> state, size_t keep_idle,
                               absl::Duration idle_timeout) {
  State& s = *state;
  s.mu.Lock();
  while (true) {
    bool retire = false;
    while (s.jobs.empty() && !s.shutdown) {
      ++s.idle;
      bool timed_out = s.work.WaitWithTimeout(&s.mu, idle_timeout);
      --s.idle;
      if (timed_out && s.jobs.empty() && s.threads > keep_idle) {
        retire = true;
        break;
      }
    }
    if (retire || s.jobs.empty()) break;  // retired, or shut down and drained
    std::function<void()> job = std::move(s.jobs.front());
    s.jobs.pop_front();
    s.mu.Unlock();
    job();
    job = nullptr;  // release what it holds outside the lock
    s.mu.Lock();
  }
  --s.threads;
  s.ended.SignalAll();
  s.mu.Unlock();
}

void ElasticThreadPool::Shutdown() {
  State& s = *state_;
  amqpgw::MutexLock lock(&s.mu);
  s.shutdown = true;
  s.work.SignalAll();
  // Jobs queued with no thread to run them (all were busy at max_threads)
  // are run by the threads as they free up; when no thread is left, start
  // one for them.
  if (s.threads == 0 && !s.jobs.empty()) {
    ++s.threads;
    std::thread(&ElasticThreadPool::Worker, state_, keep_idle_, idle_timeout_)
        .detach();
  }
  while (s.threads > 0) s.ended.Wait(&s.mu);
}

size_t ElasticThreadPool::threads() const {
  amqpgw::MutexLock lock(&state_->mu);
  return state_->threads;
}

size_t ElasticThreadPool::busy() const {
  amqpgw::MutexLock lock(&state_->mu);
  return state_->threads - state_->idle;
}

}  // namespace amqpgw::web
