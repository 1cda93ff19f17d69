// The HTTP server's connection threads: each job (one HTTP connection, for
// as long as it stays open) runs on a thread of its own. The pool grows on
// demand up to `max_threads`; beyond that, jobs wait in order for a thread
// to free up. Threads idle for `idle_timeout` retire, down to `keep_idle`.
//
// Threads: Enqueue may be called from any thread; Shutdown once, never from
// a pool thread. The state the workers touch is shared with them (a
// shared_ptr), so a worker that is still unlocking after the last job never
// touches freed memory.
#ifndef AMQPGW_SERVER_WEB_THREAD_POOL_H_
#define AMQPGW_SERVER_WEB_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/base/sync.h"

namespace amqpgw::web {

class ElasticThreadPool {
 public:
  ElasticThreadPool(size_t max_threads, size_t keep_idle,
                    absl::Duration idle_timeout);
  ~ElasticThreadPool();

  ElasticThreadPool(const ElasticThreadPool&) = delete;
  ElasticThreadPool& operator=(const ElasticThreadPool&) = delete;

  // Runs `job` on an idle thread, a new one, or (at max_threads) the first
  // one that frees up.
  void Enqueue(std::function<void()> job);
  // Runs the jobs already queued, then waits until every thread has ended.
  // Idempotent.
  void Shutdown();

  // Threads alive now, and those running a job.
  size_t threads() const;
  size_t busy() const;

 private:
  struct State {
    amqpgw::Mutex mu;
    amqpgw::CondVar work;   // a job was queued, or shutdown
    amqpgw::CondVar ended;  // a thread ended
    std::deque<std::function<void()>> jobs ABSL_GUARDED_BY(mu);
    size_t threads ABSL_GUARDED_BY(mu) = 0;
    size_t idle ABSL_GUARDED_BY(mu) = 0;
    bool shutdown ABSL_GUARDED_BY(mu) = false;
  };

  static void Worker(std::shared_ptr<State> state, size_t keep_idle,
                     absl::Duration idle_timeout);

  const size_t max_threads_;
  const size_t keep_idle_;
  const absl::Duration idle_timeout_;
  const std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_THREAD_POOL_H_
