#include "server/amqp/reply.h"

#include "absl/strings/str_cat.h"

namespace amqpgw::amqp {

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

absl::Status ConnectionLostError(absl::string_view detail) {
  return absl::UnavailableError(
      absl::StrCat("broker connection lost: ", detail));
}

}  // namespace amqpgw::amqp
