#include "server/amqp/connection.h"

namespace amqpgw::amqp {

const char* EventTypeName(Event::Type type) {
  switch (type) {
    case Event::Type::kOther:
      return "other";
    case Event::Type::kChannelOpenOk:
      return "channel.open-ok";
    case Event::Type::kChannelClose:
      return "channel.close";
    case Event::Type::kChannelCloseOk:
      return "channel.close-ok";
    case Event::Type::kConfirmSelectOk:
      return "confirm.select-ok";
    case Event::Type::kBasicQosOk:
      return "basic.qos-ok";
    case Event::Type::kBasicConsumeOk:
      return "basic.consume-ok";
    case Event::Type::kBasicCancelOk:
      return "basic.cancel-ok";
    case Event::Type::kBasicCancel:
      return "basic.cancel";
    case Event::Type::kBasicDeliver:
      return "basic.deliver";
    case Event::Type::kBasicAck:
      return "basic.ack";
    case Event::Type::kBasicNack:
      return "basic.nack";
    case Event::Type::kBasicReturn:
      return "basic.return";
    case Event::Type::kBasicGetOk:
      return "basic.get-ok";
    case Event::Type::kBasicGetEmpty:
      return "basic.get-empty";
    case Event::Type::kQueueDeclareOk:
      return "queue.declare-ok";
    case Event::Type::kQueueDeleteOk:
      return "queue.delete-ok";
    case Event::Type::kQueuePurgeOk:
      return "queue.purge-ok";
    case Event::Type::kQueueBindOk:
      return "queue.bind-ok";
    case Event::Type::kQueueUnbindOk:
      return "queue.unbind-ok";
    case Event::Type::kExchangeDeclareOk:
      return "exchange.declare-ok";
    case Event::Type::kExchangeDeleteOk:
      return "exchange.delete-ok";
    case Event::Type::kConnectionBlocked:
      return "connection.blocked";
    case Event::Type::kConnectionUnblocked:
      return "connection.unblocked";
  }
  return "?";
}

}  // namespace amqpgw::amqp
