#include "server/web/json_codec.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "server/base/quote.h"

namespace amqpgw::web {
namespace {

// A fresh message of `type`; null when the generated pool has no class for
// it.
std::unique_ptr<google::protobuf::Message> New(
    const google::protobuf::Descriptor& type) {
  const google::protobuf::Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          &type);
  if (prototype == nullptr) return nullptr;
  return std::unique_ptr<google::protobuf::Message>(prototype->New());
}

absl::Status NoClass(const google::protobuf::Descriptor& type) {
  return absl::InternalError(
      absl::StrCat("no generated class for ", type.full_name()));
}

}  // namespace

absl::StatusOr<std::string> JsonToBinary(
    const google::protobuf::Descriptor& type, absl::string_view json) {
  std::unique_ptr<google::protobuf::Message> message = New(type);
  if (message == nullptr) return NoClass(type);
  bool blank = true;
  for (char c : json) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') blank = false;
  }
  if (!blank) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    google::protobuf::util::Status s =
        google::protobuf::util::JsonStringToMessage(
            google::protobuf::StringPiece(json.data(), json.size()),
            message.get(), options);
    if (!s.ok()) {
      // The first line: protobuf's parser may add the caller's text around
      // the place it stopped on the lines after it.
      absl::string_view why(s.message().data(), s.message().size());
      why = why.substr(0, why.find('\n'));
      return absl::InvalidArgumentError(
          absl::StrCat("the request is not JSON for ", type.full_name(), ": ",
                       QuoteInput(why, 200)));
    }
  }
  std::string out;
  if (!message->SerializeToString(&out)) {
    // Only a message with missing required fields (proto2) fails here.
    return absl::InvalidArgumentError(absl::StrCat(
        "the request lacks required fields of ", type.full_name(), ": ",
        QuoteInput(message->InitializationErrorString(), 200)));
  }
  return out;
}

absl::StatusOr<std::string> BinaryToJson(
    const google::protobuf::Descriptor& type, absl::string_view binary) {
  std::unique_ptr<google::protobuf::Message> message = New(type);
  if (message == nullptr) return NoClass(type);
  if (!message->ParsePartialFromArray(binary.data(),
                                      static_cast<int>(binary.size()))) {
    return absl::InternalError(
        absl::StrCat("the reply could not be parsed as ", type.full_name()));
  }
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  google::protobuf::util::Status s =
      google::protobuf::util::MessageToJsonString(*message, &out, options);
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat(
        "the reply could not be written as JSON: ",
        absl::string_view(s.message().data(), s.message().size())));
  }
  return out;
}

}  // namespace amqpgw::web
