// Backend: the daemon's one ManagementClient and what is known of it. The
// API's URL is either given (--management_url) or taken from the broker's
// host once the broker session is up (http://<host>:15672/); in both cases
// the API is asked once who its user is (WhoAmI), and the answer reported
// (the daemon logs it). From then on every request says whether the API
// answers (status()), so an API that comes later (the plugin enabled
// afterwards) is noticed without a restart.
//
// Thread safety: every method from any thread; SessionUp never blocks.
#ifndef AMQPGW_SERVER_MANAGEMENT_BACKEND_H_
#define AMQPGW_SERVER_MANAGEMENT_BACKEND_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/base/sync.h"
#include "server/management/client.h"

namespace amqpgw::management {

// The management plugin's port when the URL is not given.
inline constexpr int kDefaultManagementPort = 15672;

class Backend {
 public:
  // Called on a client thread with the URL and the probe's answer. Must not
  // block.
  using ProbeCallback =
      std::function<void(const std::string& url, const absl::StatusOr<User>&)>;

  struct Status {
    enum class State {
      kWaiting,      // the URL comes with the broker session, not up yet
      kAvailable,    // the API answered the last request
      kUnavailable,  // it did not: `detail` says why and what to fix
    };
    State state = State::kWaiting;
    std::string url;  // never credentials
    std::string detail;
    absl::Time checked = absl::InfinitePast();
  };

  // `options.url` empty: derived in SessionUp. Otherwise the URL must be
  // valid (the daemon checks it first): the client starts now.
  Backend(ManagementClient::Options options, ProbeCallback on_probe);
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // The broker session is up on `broker_host` (a name or address; IPv6
  // without brackets). The first call makes the client if the URL was not
  // given and probes it once; later calls do nothing.
  void SessionUp(const std::string& broker_host) ABSL_LOCKS_EXCLUDED(mu_);

  // Null until the URL is known (or after Stop).
  std::shared_ptr<ManagementClient> client() const ABSL_LOCKS_EXCLUDED(mu_);
  Status status() const ABSL_LOCKS_EXCLUDED(mu_);
  // The answer for a listing call while client() is null.
  absl::Status NotYetError() const;

  // Stops the client (calls waiting get UNAVAILABLE). Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ManagementClient::Options options_;
  const ProbeCallback on_probe_;

  mutable amqpgw::Mutex mu_;
  std::shared_ptr<ManagementClient> client_ ABSL_GUARDED_BY(mu_);
  // Set by the probe until a request of a caller says more.
  std::string user_detail_ ABSL_GUARDED_BY(mu_);
  bool probed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// The URL the daemon tries when none is given: http://<host>:15672/
// (brackets around an IPv6 address).
std::string DefaultUrl(const std::string& broker_host);

}  // namespace amqpgw::management

#endif  // AMQPGW_SERVER_MANAGEMENT_BACKEND_H_
