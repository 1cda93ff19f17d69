// How consume prints a delivery: one human line, or one JSON object.
#ifndef AMQPGW_CLIENT_DELIVERY_FORMAT_H_
#define AMQPGW_CLIENT_DELIVERY_FORMAT_H_

#include <string>

#include "amqpgw/v1/gateway.pb.h"

namespace amqpgw::cli {

// "#1 orders persistent content_type=text/plain headers={n=5} | hello":
// delivery id (left out when 0, as in GetMessages), routing key, the properties
// that are set, then the body as HumanBody shows it. Never contains control
// characters.
std::string HumanDelivery(const v1::Delivery& delivery);

// The Delivery as one line of JSON (proto field names, default values left
// out) with "body" and "body_encoding": "text" when `text` is set and the
// body is valid UTF-8, else "base64" (body base64-encoded).
std::string JsonDelivery(const v1::Delivery& delivery, bool text);

}  // namespace amqpgw::cli

#endif  // AMQPGW_CLIENT_DELIVERY_FORMAT_H_
