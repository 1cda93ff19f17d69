// libFuzzer target: arbitrary bytes as API requests, through the gateway's
// validation and conversion. Nothing may crash, and whatever validation
// accepts must be encodable on the AMQP wire.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "amqpgw/v1/gateway.pb.h"
#include "server/amqp/codec.h"
#include "server/grpc/convert.h"

namespace {

void CheckEncodable(const amqpgw::amqp::OutgoingMessage& m) {
  auto wire = amqpgw::amqp::EncodeProperties(m.properties);
  if (!wire.ok()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amqpgw;
  grpc_api::Limits limits;
  v1::PublishBatchRequest batch;
  if (batch.ParseFromArray(data, static_cast<int>(size))) {
    for (int i = 0; i < batch.messages_size() && i < 100; ++i) {
      auto m = grpc_api::ToOutgoingMessage(batch.messages(i), "m", limits);
      if (m.ok()) {
        CheckEncodable(*m);
        // And back: what a consumer would see.
        v1::MessageProperties out;
        grpc_api::ToProtoProperties(m->properties, &out);
      }
    }
  }
  v1::DeclareQueueRequest dq;
  if (dq.ParseFromArray(data, static_cast<int>(size))) {
    auto a = grpc_api::ToQueueDeclareArgs(dq);
    if (a.ok() && !amqpgw::amqp::EncodeFieldTable(a->arguments).ok()) {
      std::abort();
    }
  }
  v1::StreamMessagesRequest sr;
  if (sr.ParseFromArray(data, static_cast<int>(size))) {
    (void)grpc_api::ToSubscribeOptions(sr);
  }
  v1::BindQueueRequest br;
  if (br.ParseFromArray(data, static_cast<int>(size))) {
    (void)grpc_api::ToBindArgs(br);
  }
  return 0;
}
