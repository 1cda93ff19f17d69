// What RabbitMQ's management HTTP API tells about a virtual host, as plain
// C++ values (no JSON, no gRPC): queues with their counts and rates,
// exchanges, bindings, consumers. Filled by parse.h; plain data, any thread.
#ifndef AMQPGW_SERVER_MANAGEMENT_TYPES_H_
#define AMQPGW_SERVER_MANAGEMENT_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace amqpgw::management {

// An argument value as the management API shows it (JSON): queue, exchange,
// binding and consumer arguments. Tables keep the broker's key order.
struct Value {
  enum class Kind { kNull, kBool, kInt, kDouble, kString, kList, kTable };
  Kind kind = Kind::kNull;
  bool bool_value = false;
  int64_t int_value = 0;
  double double_value = 0;
  std::string string_value;
  std::vector<Value> list;
  std::vector<std::pair<std::string, Value>> table;
};
using Arguments = std::vector<std::pair<std::string, Value>>;

// Messages per second, as the broker's management plugin computes them
// from its last statistics samples (every collect_statistics_interval,
// 5 s by default). 0 when the queue has had no such traffic.
struct QueueRates {
  // Messages published into the queue.
  double publish = 0;
  // Messages handed to consumers or fetched with basic.get, with or without
  // acknowledgement (the management API's deliver_get).
  double deliver = 0;
  // Deliveries acknowledged by consumers.
  double ack = 0;
  // Deliveries that were redeliveries.
  double redeliver = 0;
};

struct Queue {
  std::string name;
  // "classic", "quorum" or "stream".
  std::string type;
  bool durable = false;
  bool auto_delete = false;
  bool exclusive = false;
  Arguments arguments;
  // The policy that applies to the queue; empty when none.
  std::string policy;
  // Messages ready for delivery, delivered and not yet acknowledged, and
  // both.
  uint64_t ready = 0;
  uint64_t unacked = 0;
  uint64_t total = 0;
  uint64_t consumers = 0;
  // Share of time (0..1) the queue could deliver to its consumers at once;
  // absent when the broker does not report it (no consumers, streams).
  std::optional<double> consumer_utilisation;
  // Bytes of memory the queue's process uses.
  uint64_t memory = 0;
  QueueRates rates;
  // As the broker reports it: "running", "idle", "flow", "down",
  // "crashed", "stopped", "minority", ...
  std::string state;
  // The node hosting the queue (the leader, for quorum queues and streams).
  std::string node;
  // Quorum queues and streams: member nodes that are not online.
  std::vector<std::string> members_down;
};

struct Exchange {
  std::string name;  // "" is the default exchange
  // "direct", "fanout", "topic", "headers" or a plugin's type.
  std::string type;
  bool durable = false;
  bool auto_delete = false;
  bool internal = false;
  Arguments arguments;
  std::string policy;
  // Messages per second published into the exchange and routed out of it.
  double publish_in_rate = 0;
  double publish_out_rate = 0;
};

struct Binding {
  // The exchange ("" for the default exchange's implicit bindings).
  std::string source;
  std::string destination;
  // "queue" or "exchange".
  std::string destination_type;
  std::string routing_key;
  Arguments arguments;
  // The broker's id of the binding among those of the same source and
  // destination (the management API's properties_key).
  std::string properties_key;
};

struct Consumer {
  std::string queue;
  std::string consumer_tag;
  // The broker's name of the channel's connection ("ip:port -> ip:port").
  std::string connection;
  // The name the client gave its connection (connection_name client
  // property); empty when none.
  std::string connection_name;
  // The broker user of the connection.
  std::string user;
  uint32_t prefetch = 0;
  // True: the consumer acknowledges (manual acks); false: the broker
  // considers messages acknowledged when sent (no-ack).
  bool ack_required = false;
  bool exclusive = false;
  // False while a single-active-consumer queue holds it in reserve.
  bool active = true;
  Arguments arguments;
  // The connection's name says it is one of this gateway's own.
  bool own = false;
};

// One page of a listing. `page` counts from 1.
template <typename T>
struct Page {
  std::vector<T> items;
  int page = 1;
  int page_count = 0;
  // Items matching the filter, and all items of the virtual host.
  uint64_t filtered_count = 0;
  uint64_t total_count = 0;
};

// Which page of which items: the management API's own paging, sorted by
// name.
struct ListQuery {
  // A regular expression (the broker's PCRE flavour) the name must match;
  // empty: all.
  std::string name_regex;
  int page = 1;
  // 1..kMaxPageSize.
  int page_size = 100;
};
inline constexpr int kMaxPageSize = 500;

// The management user as the API knows it (GET /api/whoami).
struct User {
  std::string name;
  std::vector<std::string> tags;
};

}  // namespace amqpgw::management

#endif  // AMQPGW_SERVER_MANAGEMENT_TYPES_H_
