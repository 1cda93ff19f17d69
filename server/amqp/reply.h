// The one place where AMQP reply codes become absl::Status codes.
#ifndef AMQPGW_SERVER_AMQP_REPLY_H_
#define AMQPGW_SERVER_AMQP_REPLY_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace amqpgw::amqp {

// AMQP 0-9-1 reply codes used by the gateway.
enum ReplyCode : uint16_t {
  kReplySuccess = 200,
  kContentTooLarge = 311,
  kNoRoute = 312,
  kNoConsumers = 313,
  kConnectionForced = 320,
  kInvalidPath = 402,
  kAccessRefused = 403,
  kNotFound = 404,
  kResourceLocked = 405,
  kPreconditionFailed = 406,
  kFrameError = 501,
  kSyntaxError = 502,
  kCommandInvalid = 503,
  kChannelError = 504,
  kUnexpectedFrame = 505,
  kResourceError = 506,
  kNotAllowed = 530,
  kNotImplemented = 540,
  kInternalError = 541,
};

// Maps a broker reply (channel.close, connection.close, basic.return) to a
// status: 404 NOT_FOUND, 403 PERMISSION_DENIED, 405/406 FAILED_PRECONDITION,
// 312 NO_ROUTE and 313 NO_CONSUMERS FAILED_PRECONDITION, 320 UNAVAILABLE,
// 506 RESOURCE_EXHAUSTED, 530 PERMISSION_DENIED, 540 UNIMPLEMENTED, protocol
// errors INTERNAL. 200 is OK. The message keeps the broker's text, prefixed by
// `context` when given (e.g. "declare queue 'q'").
absl::Status ReplyToStatus(int reply_code, absl::string_view reply_text,
                           absl::string_view context = "");

// Whether a channel.close refuses basic.consume's x-stream-offset argument
// on a queue that is not a stream: RabbitMQ 3.10 answers 406 "invalid arg
// 'x-stream-offset' for queue '...' of queue type rabbit_classic_queue".
bool IsStreamOffsetRefusal(int reply_code, absl::string_view reply_text);

// The status for a lost or unreachable broker connection (UNAVAILABLE).
absl::Status ConnectionLostError(absl::string_view detail);

// The status for a connection.close the broker sent: UNAVAILABLE like any
// lost connection, carrying the broker's reply code for BrokerCloseCode().
absl::Status BrokerClosedConnectionError(int reply_code,
                                         absl::string_view reply_text);

// The reply code of the broker's connection.close that `status` reports
// (BrokerClosedConnectionError), or 0 when the connection ended otherwise (a
// socket error, missed heartbeats, a close the gateway asked for).
int BrokerCloseCode(const absl::Status& status);

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_REPLY_H_
