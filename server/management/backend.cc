#include "server/management/backend.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace amqpgw::management {

std::string DefaultUrl(const std::string& broker_host) {
  const bool v6 = broker_host.find(':') != std::string::npos;
  return absl::StrCat("http://", v6 ? "[" : "", broker_host, v6 ? "]" : "", ":",
                      kDefaultManagementPort, "/");
}

Backend::Backend(ManagementClient::Options options, ProbeCallback on_probe)
    : options_(std::move(options)), on_probe_(std::move(on_probe)) {
  if (!options_.url.empty()) {
    auto c = ManagementClient::Create(options_);
    if (c.ok()) client_ = *std::move(c);
  }
}

Backend::~Backend() { Stop(); }

void Backend::SessionUp(const std::string& broker_host) {
  std::shared_ptr<ManagementClient> client;
  {
    amqpgw::MutexLock lock(&mu_);
    if (probed_ || stopped_) return;
    probed_ = true;
    if (client_ == nullptr) {
      ManagementClient::Options o = options_;
      o.url = DefaultUrl(broker_host);
      auto c = ManagementClient::Create(o);
      if (!c.ok()) return;  // a host that makes no URL: listing stays off
      client_ = *std::move(c);
    }
    client = client_;
  }
  client->WhoAmI([this, url = client->url()](absl::StatusOr<User> user) {
    {
      amqpgw::MutexLock lock(&mu_);
      if (stopped_) return;  // the answer of a shutdown says nothing
      if (user.ok()) {
        user_detail_ = absl::StrCat(
            "user ", user->name, " (tags: ",
            user->tags.empty() ? "none" : absl::StrJoin(user->tags, ", "), ")");
      }
    }
    if (on_probe_) on_probe_(url, user);
  });
}

std::shared_ptr<ManagementClient> Backend::client() const {
  amqpgw::MutexLock lock(&mu_);
  return client_;
}

Backend::Status Backend::status() const {
  std::shared_ptr<ManagementClient> client;
  Status out;
  {
    amqpgw::MutexLock lock(&mu_);
    client = client_;
    out.detail = user_detail_;
  }
  if (client == nullptr) {
    out.detail = std::string(NotYetError().message());
    return out;
  }
  out.url = client->url();
  ManagementClient::Availability a = client->availability();
  out.checked = a.checked;
  if (a.checked == absl::InfinitePast()) {
    out.state = Status::State::kWaiting;
    out.detail = "not asked yet";
  } else if (a.status.ok()) {
    out.state = Status::State::kAvailable;
  } else {
    out.state = Status::State::kUnavailable;
    out.detail = std::string(a.status.message());
  }
  return out;
}

absl::Status Backend::NotYetError() const {
  return absl::UnavailableError(
      "listing uses RabbitMQ's management API, which the gateway looks for "
      "at http://<broker host>:15672/ once the broker session is up (not "
      "yet); --management_url names it");
}

void Backend::Stop() {
  std::shared_ptr<ManagementClient> client;
  {
    amqpgw::MutexLock lock(&mu_);
    stopped_ = true;
    client = client_;
  }
  if (client != nullptr) client->Stop();
}

}  // namespace amqpgw::management
