// The one place where answers of RabbitMQ's management API (or their
// absence) become absl::Status, mapped like broker errors:
//   cannot connect (nothing listens: the plugin is off, or the URL is
//     wrong)                           FAILED_PRECONDITION, saying how to
//                                      enable the plugin or which flag to set
//   timeout, reset, TLS failure        UNAVAILABLE
//   401 / 403                          PERMISSION_DENIED, naming the user and
//                                      the tag or vhost access it lacks
//   404                                NOT_FOUND (the queue, exchange or
//                                      vhost asked for)
//   400                                INVALID_ARGUMENT (the broker's reason)
//   5xx                                UNAVAILABLE
//   an answer that is not the API's    FAILED_PRECONDITION (check the URL)
// Messages never carry the password and cut the broker's text to 200 bytes.
//
// Pure functions: any thread.
#ifndef AMQPGW_SERVER_MANAGEMENT_ERRORS_H_
#define AMQPGW_SERVER_MANAGEMENT_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace amqpgw::management {

// Who asked what, for the messages.
struct RequestContext {
  // The API's base URL without credentials, e.g. "http://127.0.0.1:15672/".
  std::string url;
  // The management user.
  std::string user;
  std::string vhost;
  // What a 404 means, e.g. "queue 'orders'" (the name quoted with
  // QuoteInput: it came from a caller); empty: the vhost.
  std::string object;
};

// Why no HTTP answer came.
enum class TransportError {
  kConnect,  // could not connect: refused, or the host is unknown
  kTimeout,  // no answer within the timeout
  kTls,      // TLS handshake or certificate verification failed
  kOther,    // the connection broke while sending or reading
};

absl::Status TransportErrorToStatus(TransportError error,
                                    absl::string_view detail,
                                    const RequestContext& context);

// An HTTP answer with a status outside 2xx; `body` is the broker's
// {"error": ..., "reason": ...} when it sent one.
absl::Status HttpErrorToStatus(int http_status, absl::string_view body,
                               const RequestContext& context);

// A 2xx answer whose body is not what the API sends (`why` from parse.h).
absl::Status UnexpectedAnswer(const absl::Status& why,
                              const RequestContext& context);

}  // namespace amqpgw::management

#endif  // AMQPGW_SERVER_MANAGEMENT_ERRORS_H_
