// libFuzzer target: arbitrary bytes as API requests, through the gateway's
// validation and conversion. Nothing may crash, and whatever validation
// accepts must be encodable on the AMQP wire and must pass every broker rule
// (server/amqp/broker_rules.h): no NaN or infinite double anywhere in a
// table, no argument or message the broker answers by closing a shared
// connection or channel, no user_id other than the broker user, tables
// within one frame.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "amqpgw/v1/gateway.pb.h"
#include "server/amqp/broker_rules.h"
#include "server/amqp/codec.h"
#include "server/grpc/convert.h"

namespace {

using amqpgw::amqp::FieldTable;

void CheckArguments(const FieldTable& args) {
  if (amqpgw::amqp::FindNonFiniteDouble(args).has_value()) std::abort();
  auto wire = amqpgw::amqp::EncodeFieldTable(args);
  if (!wire.ok() || wire->size() > amqpgw::amqp::kMaxFieldTableBytes + 64) {
    std::abort();
  }
}

void CheckMessage(const amqpgw::amqp::OutgoingMessage& m) {
  auto wire = amqpgw::amqp::EncodeProperties(m.properties);
  if (!wire.ok()) std::abort();
  if (m.properties.headers.has_value() &&
      amqpgw::amqp::FindNonFiniteDouble(*m.properties.headers).has_value()) {
    std::abort();
  }
  if (amqpgw::amqp::CheckPublish(m).has_value()) std::abort();
  if (m.properties.user_id.has_value() && *m.properties.user_id != "guest") {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amqpgw;
  grpc_api::Limits limits;
  limits.broker_users = {"guest"};
  v1::PublishBatchRequest batch;
  if (batch.ParseFromArray(data, static_cast<int>(size))) {
    for (int i = 0; i < batch.messages_size() && i < 100; ++i) {
      auto m = grpc_api::ToOutgoingMessage(batch.messages(i), "m", limits);
      if (m.ok()) {
        CheckMessage(*m);
        // And back: what a consumer would see.
        v1::MessageProperties out;
        grpc_api::ToProtoProperties(m->properties, &out);
      }
    }
  }
  v1::DeclareQueueRequest dq;
  if (dq.ParseFromArray(data, static_cast<int>(size))) {
    auto a = grpc_api::ToQueueDeclareArgs(dq);
    if (a.ok()) {
      CheckArguments(a->arguments);
      if (amqp::CheckQueueArguments(a->arguments).has_value()) std::abort();
    }
  }
  v1::DeclareExchangeRequest dx;
  if (dx.ParseFromArray(data, static_cast<int>(size))) {
    auto a = grpc_api::ToExchangeDeclareArgs(dx);
    if (a.ok()) CheckArguments(a->arguments);
  }
  v1::StreamMessagesRequest sr;
  if (sr.ParseFromArray(data, static_cast<int>(size))) {
    auto o = grpc_api::ToSubscribeOptions(sr);
    if (o.ok()) {
      CheckArguments(o->arguments);
      if (amqp::CheckConsumerArguments(o->arguments).has_value()) std::abort();
    }
  }
  v1::BindQueueRequest br;
  if (br.ParseFromArray(data, static_cast<int>(size))) {
    auto b = grpc_api::ToBindArgs(br);
    if (b.ok()) CheckArguments(b->arguments);
  }
  return 0;
}
