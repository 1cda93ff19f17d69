#include "server/management/errors.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/management/parse.h"

namespace amqpgw::management {
namespace {

constexpr size_t kMaxBrokerText = 200;

std::string Cut(absl::string_view text) {
  if (text.size() <= kMaxBrokerText) return std::string(text);
  return absl::StrCat(text.substr(0, kMaxBrokerText), "...");
}

// "HTTP 401: reason" with the broker's reason (or error) when it gave one.
std::string HttpText(int http_status, const ErrorBody& e) {
  absl::string_view why = !e.reason.empty() ? e.reason : e.error;
  if (why.empty()) return absl::StrCat("HTTP ", http_status);
  return absl::StrCat("HTTP ", http_status, ": ", Cut(why));
}

}  // namespace

absl::Status TransportErrorToStatus(TransportError error,
                                    absl::string_view detail,
                                    const RequestContext& c) {
  switch (error) {
    case TransportError::kConnect:
      return absl::FailedPreconditionError(absl::StrCat(
          "management API: cannot connect to ", c.url, " (", Cut(detail),
          "): enable the broker's management plugin "
          "(`rabbitmq-plugins enable rabbitmq_management`) or point "
          "--management_url at it"));
    case TransportError::kTimeout:
      return absl::UnavailableError(absl::StrCat("management API at ", c.url,
                                                 " did not answer in time (",
                                                 Cut(detail), ")"));
    case TransportError::kTls:
      return absl::UnavailableError(absl::StrCat(
          "management API at ", c.url, ": TLS failed (", Cut(detail),
          "); it is trusted like the broker: check --broker_tls_ca, "
          "--broker_tls_cert and --broker_tls_key"));
    case TransportError::kOther:
      break;
  }
  return absl::UnavailableError(absl::StrCat(
      "management API at ", c.url, ": connection failed (", Cut(detail), ")"));
}

absl::Status HttpErrorToStatus(int http_status, absl::string_view body,
                               const RequestContext& c) {
  ErrorBody e = ParseErrorBody(body);
  if (http_status == 401 || http_status == 403) {
    if (absl::StrContains(e.reason, "Not management user")) {
      return absl::PermissionDeniedError(
          absl::StrCat("management API user '", c.user,
                       "' has no management tag: give it the 'monitoring' tag "
                       "(`rabbitmqctl set_user_tags ",
                       c.user, " monitoring`) or set --management_user"));
    }
    if (absl::StrContains(e.reason, "Login failed")) {
      return absl::PermissionDeniedError(absl::StrCat(
          "management API refused the login of user '", c.user,
          "' (unknown user or wrong password): check --management_user and "
          "--management_password_file"));
    }
    if (absl::StrContains(e.reason, "virtual host")) {
      return absl::PermissionDeniedError(absl::StrCat(
          "management API user '", c.user, "' may not see vhost '", c.vhost,
          "': give it access there; listing needs no rights on the "
          "vhost's resources (`rabbitmqctl set_permissions -p ",
          c.vhost, " ", c.user, " '' '' ''`)"));
    }
    return absl::PermissionDeniedError(
        absl::StrCat("management API refused user '", c.user, "' (",
                     HttpText(http_status, e), ")"));
  }
  if (http_status == 404) {
    if (c.object.empty()) {
      return absl::NotFoundError(
          absl::StrCat("vhost '", c.vhost, "' not found"));
    }
    return absl::NotFoundError(
        absl::StrCat(c.object, " not found in vhost '", c.vhost, "'"));
  }
  if (http_status == 400) {
    return absl::InvalidArgumentError(absl::StrCat(
        "management API refused the request (", HttpText(http_status, e), ")"));
  }
  if (http_status >= 500 && http_status <= 599) {
    return absl::UnavailableError(absl::StrCat("management API at ", c.url,
                                               " failed (",
                                               HttpText(http_status, e), ")"));
  }
  return absl::UnknownError(absl::StrCat(
      "management API at ", c.url, " answered ", HttpText(http_status, e)));
}

absl::Status UnexpectedAnswer(const absl::Status& why,
                              const RequestContext& c) {
  return absl::FailedPreconditionError(
      absl::StrCat("the server at ", c.url,
                   " does not answer like RabbitMQ's management API (",
                   Cut(why.message()), "): check --management_url"));
}

}  // namespace amqpgw::management
