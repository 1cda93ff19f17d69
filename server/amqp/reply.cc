#include "server/amqp/reply.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace amqpgw::amqp {
namespace {

// The payload that carries a broker's connection.close reply code.
constexpr absl::string_view kBrokerCloseUrl = "amqpgw/broker-close-code";

}  // namespace

absl::Status ReplyToStatus(int reply_code, absl::string_view reply_text,
                           absl::string_view context) {
  absl::StatusCode code;
  switch (reply_code) {
    case kReplySuccess:
      return absl::OkStatus();
    case kContentTooLarge:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case kNoRoute:
    case kNoConsumers:
    case kResourceLocked:
    case kPreconditionFailed:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case kConnectionForced:
      code = absl::StatusCode::kUnavailable;
      break;
    case kInvalidPath:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case kAccessRefused:
    case kNotAllowed:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case kNotFound:
      code = absl::StatusCode::kNotFound;
      break;
    case kResourceError:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case kNotImplemented:
      code = absl::StatusCode::kUnimplemented;
      break;
    case kFrameError:
    case kSyntaxError:
    case kCommandInvalid:
    case kChannelError:
    case kUnexpectedFrame:
    case kInternalError:
      code = absl::StatusCode::kInternal;
      break;
    default:
      code = absl::StatusCode::kUnknown;
      break;
  }
  std::string text(reply_text);
  if (text.empty()) text = absl::StrCat("broker reply code ", reply_code);
  if (!context.empty()) text = absl::StrCat(context, ": ", text);
  return absl::Status(code, text);
}

bool IsStreamOffsetRefusal(int reply_code, absl::string_view reply_text) {
  return reply_code == kPreconditionFailed &&
         absl::StrContains(reply_text, "invalid arg 'x-stream-offset'");
}

absl::Status ConnectionLostError(absl::string_view detail) {
  return absl::UnavailableError(
      absl::StrCat("broker connection lost: ", detail));
}

absl::Status BrokerClosedConnectionError(int reply_code,
                                         absl::string_view reply_text) {
  absl::Status s = ConnectionLostError(
      absl::StrCat("closed by the broker (", reply_code, " ", reply_text, ")"));
  s.SetPayload(kBrokerCloseUrl, absl::Cord(absl::StrCat(reply_code)));
  return s;
}

int BrokerCloseCode(const absl::Status& status) {
  auto code = status.GetPayload(kBrokerCloseUrl);
  int n = 0;
  if (!code.has_value() || !absl::SimpleAtoi(std::string(*code), &n)) return 0;
  return n;
}

}  // namespace amqpgw::amqp
