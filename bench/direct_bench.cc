// amqpgw-bench-direct: the baseline. The same scenarios and summary line as
// amqpgw-bench, but talking AMQP straight to the broker with rabbitmq-c, the
// way a careful C user would: confirms with a sliding window of W messages,
// basic.consume with prefetch P and manual acks (multiple=true every
// --ack_batch messages).
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/common.h"

namespace amqpgw::bench {
namespace {

constexpr char kUsage[] =
    R"(amqpgw-bench-direct MODE [flags]: RabbitMQ through rabbitmq-c, no gateway.

Modes:
  publish        publish N messages with publisher confirms and a sliding
                 window of --window unconfirmed messages
  publish-sync   the same with a window of 1 (latency p50/p99/p999)
  stream         basic.consume N messages with --prefetch and manual acks
                 (multiple=true every --ack_batch messages); --fill first
                 publishes N messages (not timed)

Flags:
  --broker URI        amqp://guest:guest@127.0.0.1:5672/
  --queue NAME        durable queue, declared if missing (amqpgw-bench)
  -n N                messages (default 100000; 100k and 1m work)
  --size S            body bytes (default 100)
  --transient         delivery_mode 1 (default persistent, 2)
  --window W          publish: unconfirmed messages in flight (default 256)
  --prefetch P        stream: basic.qos (default 1000)
  --ack_batch K       stream: ack every K messages (default prefetch/4)
  --ack manual|none   stream: none consumes with no_ack (default manual)
  --fill              stream: publish N messages first
  --purge             purge the queue before the run
  --warmup M          publish: M messages first, not timed
  --gateway_props     publish: give every message a fresh message_id (a
                      UUID, as amqpgwd adds with --default_message_id) and
                      a fresh `traceparent` header (as amqpgwd adds for
                      traced calls), to measure what they cost the broker
  --pause_us P        publish: wait P microseconds after each confirm before
                      sending more (a caller whose next message comes a
                      round trip later, as through a gateway; the pause is
                      not in the latencies), to measure what the broker's
                      going idle between messages costs
  --gateway_pid PID   (unused here; accepted so both tools take one command)
  --broker_pid PID    report the broker's CPU per message and peak RSS
  --label TEXT        echoed in the summary
)";

struct Options {
  std::string broker;
  std::string queue;
  int64_t n;
  int64_t size;
  bool persistent;
  int64_t window;
  int64_t prefetch;
  int64_t ack_batch;
  bool no_ack;
  bool fill;
  bool purge;
  int64_t warmup;
  bool gateway_props;
  absl::Duration pause;
  pid_t broker_pid;
  std::string label;
};

[[noreturn]] void Fatal(const std::string& what) {
  std::fprintf(stderr, "amqpgw-bench-direct: %s\n", what.c_str());
  std::exit(1);
}

void CheckReply(amqp_connection_state_t conn, const char* what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    Fatal(absl::StrCat(what, ": ", amqp_error_string2(r.library_error)));
  }
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
    Fatal(absl::StrCat(what, ": ", m->reply_code, " ",
                       std::string(static_cast<char*>(m->reply_text.bytes),
                                   m->reply_text.len)));
  }
  Fatal(absl::StrCat(what, ": broker error"));
}

amqp_connection_state_t Connect(const Options& o) {
  std::vector<char> url(o.broker.begin(), o.broker.end());
  url.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(url.data(), &info) != AMQP_STATUS_OK) {
    Fatal("--broker: not an amqp:// URI");
  }
  // "amqp://host:port/" names the default vhost, as the gateway reads it.
  if (info.vhost == nullptr || info.vhost[0] == '\0') {
    info.vhost = const_cast<char*>("/");
  }
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn);
  if (socket == nullptr) Fatal("cannot create socket");
  int rc = amqp_socket_open(socket, info.host, info.port);
  if (rc != AMQP_STATUS_OK) {
    Fatal(absl::StrCat("connect ", info.host, ":", info.port, ": ",
                       amqp_error_string2(rc)));
  }
  amqp_rpc_reply_t r =
      amqp_login(conn, info.vhost, 0, 131072, /*heartbeat=*/0,
                 AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) Fatal("login failed");
  amqp_channel_open(conn, 1);
  CheckReply(conn, "channel.open");
  amqp_queue_declare(conn, 1, amqp_cstring_bytes(o.queue.c_str()), 0,
                     /*durable=*/1, 0, 0, amqp_empty_table);
  CheckReply(conn, "queue.declare");
  return conn;
}

void Close(amqp_connection_state_t conn) {
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

// Publishes `n` messages on channel 1 (in confirm mode) keeping at most
// `window` unconfirmed; latencies (send to confirm) go to `lat` if given.
// Returns the number nacked or returned.
uint64_t PublishConfirmed(amqp_connection_state_t conn, const Options& o,
                          int64_t n, int64_t window, Latencies* lat) {
  std::string body = MakeBody(static_cast<size_t>(o.size));
  amqp_bytes_t body_bytes{body.size(), body.data()};
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = o.persistent ? 2 : 1;
  amqp_bytes_t rk = amqp_cstring_bytes(o.queue.c_str());
  // --gateway_props: the same shapes as amqpgwd's, new values per message.
  std::string message_id(36, '0'), traceparent(55, '0');
  amqp_table_entry_t header;
  uint64_t rng = 0x9e3779b97f4a7c15ULL;
  if (o.gateway_props) {
    props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
    header.key = amqp_cstring_bytes("traceparent");
    header.value.kind = AMQP_FIELD_KIND_UTF8;
    props.headers.num_entries = 1;
    props.headers.entries = &header;
  }
  auto fill_hex = [&rng](std::string& s, size_t from, size_t count) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (size_t i = 0; i < count; ++i) {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      s[from + i] = kHex[rng & 15];
    }
  };

  std::deque<int64_t> sent_at;  // send times of unconfirmed, by sequence
  uint64_t first_unconfirmed = 1, next_seq = 1, failed = 0;
  int64_t confirmed = 0;
  while (confirmed < n) {
    while (static_cast<int64_t>(next_seq - 1) < n &&
           static_cast<int64_t>(next_seq - first_unconfirmed) < window) {
      if (o.gateway_props) {
        fill_hex(message_id, 0, 36);
        for (size_t dash : {8, 13, 18, 23}) message_id[dash] = '-';
        traceparent = "00-";
        traceparent.resize(55, '0');
        fill_hex(traceparent, 3, 32);
        traceparent[35] = '-';
        fill_hex(traceparent, 36, 16);
        traceparent.replace(52, 3, "-00");
        props.message_id = {message_id.size(), message_id.data()};
        header.value.value.bytes = {traceparent.size(), traceparent.data()};
      }
      sent_at.push_back(NowNs());
      int rc = amqp_basic_publish(conn, 1, amqp_empty_bytes, rk,
                                  /*mandatory=*/1, 0, &props, body_bytes);
      if (rc != AMQP_STATUS_OK) {
        Fatal(absl::StrCat("basic.publish: ", amqp_error_string2(rc)));
      }
      ++next_seq;
    }
    amqp_frame_t frame;
    int rc = amqp_simple_wait_frame(conn, &frame);
    if (rc != AMQP_STATUS_OK) {
      Fatal(absl::StrCat("read: ", amqp_error_string2(rc)));
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;  // return content
    uint64_t tag = 0;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto* m = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        tag = m->delivery_tag;
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto* m = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
        tag = m->delivery_tag;
        ++failed;  // counted once per frame; nacks do not happen here
        break;
      }
      case AMQP_BASIC_RETURN_METHOD:
        ++failed;
        continue;
      case AMQP_CHANNEL_CLOSE_METHOD:
        Fatal("the broker closed the channel");
      default:
        continue;
    }
    // One queue on one channel: the broker confirms in order, so an ack
    // (single or multiple) settles everything up to its tag.
    if (tag < first_unconfirmed) continue;
    int64_t now = NowNs();
    for (uint64_t s = first_unconfirmed; s <= tag && !sent_at.empty(); ++s) {
      if (lat != nullptr) lat->Add(now - sent_at.front());
      sent_at.pop_front();
      ++confirmed;
    }
    first_unconfirmed = tag + 1;
    amqp_maybe_release_buffers(conn);
    // A caller's think time, not synchronisation.
    if (o.pause > absl::ZeroDuration()) absl::SleepFor(o.pause);
  }
  return failed;
}

int RunPublish(const Options& o, int64_t window, const std::string& mode) {
  amqp_connection_state_t conn = Connect(o);
  if (o.purge) {
    amqp_queue_purge(conn, 1, amqp_cstring_bytes(o.queue.c_str()));
    CheckReply(conn, "queue.purge");
  }
  amqp_confirm_select(conn, 1);
  CheckReply(conn, "confirm.select");
  if (o.warmup > 0) PublishConfirmed(conn, o, o.warmup, window, nullptr);

  ProcWatch broker(o.broker_pid);
  Latencies lat;
  lat.Reserve(static_cast<size_t>(o.n));
  broker.Start();
  double cpu0 = SelfCpuSeconds();
  absl::Time start = absl::Now();
  uint64_t failed = PublishConfirmed(conn, o, o.n, window, &lat);
  absl::Duration elapsed = absl::Now() - start;
  double client_cpu = SelfCpuSeconds() - cpu0;
  broker.Stop();
  Close(conn);

  Summary s;
  s.Set("tool", "direct").Set("mode", mode);
  if (!o.label.empty()) s.Set("label", o.label);
  s.Set("n", o.n).Set("size", o.size).Set("persistent", o.persistent ? 1 : 0);
  s.Set("window", window);
  if (o.pause > absl::ZeroDuration()) {
    s.Set("pause_us", absl::ToInt64Microseconds(o.pause));
  }
  s.Set("ok", o.n - static_cast<int64_t>(failed))
      .Set("errors", static_cast<int64_t>(failed));
  AddThroughput(s, static_cast<uint64_t>(o.n), elapsed);
  AddLatencies(s, lat);
  AddClientCpu(s, client_cpu, static_cast<uint64_t>(o.n));
  AddProcess(s, "broker", broker, static_cast<uint64_t>(o.n), elapsed);
  s.Print();
  return failed == 0 ? 0 : 1;
}

int RunStream(const Options& o) {
  amqp_connection_state_t conn = Connect(o);
  if (o.purge) {
    amqp_queue_purge(conn, 1, amqp_cstring_bytes(o.queue.c_str()));
    CheckReply(conn, "queue.purge");
  }
  if (o.fill) {
    amqp_connection_state_t pub = Connect(o);
    amqp_confirm_select(pub, 1);
    CheckReply(pub, "confirm.select");
    PublishConfirmed(pub, o, o.n, 1024, nullptr);
    Close(pub);
  }
  amqp_basic_qos(conn, 1, 0, static_cast<uint16_t>(o.prefetch), 0);
  CheckReply(conn, "basic.qos");

  ProcWatch broker(o.broker_pid);
  broker.Start();
  double cpu0 = SelfCpuSeconds();
  absl::Time start = absl::Now();
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(o.queue.c_str()),
                     amqp_empty_bytes, 0, o.no_ack ? 1 : 0, 0,
                     amqp_empty_table);
  CheckReply(conn, "basic.consume");
  int64_t got = 0;
  uint64_t bytes = 0;
  uint64_t last_tag = 0, acked_tag = 0;
  while (got < o.n) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    amqp_rpc_reply_t r = amqp_consume_message(conn, &env, nullptr, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
          r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        // Some other method (e.g. basic.cancel): read and ignore it.
        amqp_frame_t frame;
        if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK) {
          Fatal("read failed");
        }
        if (frame.frame_type == AMQP_FRAME_METHOD &&
            frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
          Fatal("the broker cancelled the consumer");
        }
        continue;
      }
      Fatal("consume failed");
    }
    ++got;
    bytes += env.message.body.len;
    last_tag = env.delivery_tag;
    amqp_destroy_envelope(&env);
    if (!o.no_ack &&
        static_cast<int64_t>(last_tag - acked_tag) >= o.ack_batch) {
      amqp_basic_ack(conn, 1, last_tag, /*multiple=*/1);
      acked_tag = last_tag;
    }
  }
  if (!o.no_ack && last_tag > acked_tag) amqp_basic_ack(conn, 1, last_tag, 1);
  absl::Duration elapsed = absl::Now() - start;
  double client_cpu = SelfCpuSeconds() - cpu0;
  broker.Stop();
  Close(conn);

  Summary s;
  s.Set("tool", "direct").Set("mode", "stream");
  if (!o.label.empty()) s.Set("label", o.label);
  s.Set("n", o.n).Set("size", o.size).Set("persistent", o.persistent ? 1 : 0);
  s.Set("prefetch", o.prefetch)
      .Set("ack", o.no_ack ? "none" : "manual")
      .Set("ack_batch", o.ack_batch);
  s.Set("ok", got).Set("errors", int64_t{0});
  AddThroughput(s, static_cast<uint64_t>(got), elapsed);
  AddClientCpu(s, client_cpu, static_cast<uint64_t>(got));
  AddProcess(s, "broker", broker, static_cast<uint64_t>(got), elapsed);
  s.Print();
  return 0;
}

int Main(int argc, char** argv) {
  Flags f(argc, argv, kUsage);
  Options o;
  o.broker = f.Str("broker", "amqp://guest:guest@127.0.0.1:5672/");
  o.queue = f.Str("queue", "amqpgw-bench");
  o.n = f.Int("n", 100000);
  o.size = f.Int("size", 100);
  o.persistent = !f.Bool("transient", false);
  o.window = f.Int("window", 256);
  o.prefetch = f.Int("prefetch", 1000);
  o.ack_batch = f.Int("ack_batch", std::max<int64_t>(1, o.prefetch / 4));
  std::string ack = f.Str("ack", "manual");
  o.no_ack = ack == "none";
  o.fill = f.Bool("fill", false);
  o.purge = f.Bool("purge", false);
  o.warmup = f.Int("warmup", 0);
  o.gateway_props = f.Bool("gateway_props", false);
  o.pause = absl::Microseconds(f.Int("pause_us", 0));
  f.Int("gateway_pid", 0);
  o.broker_pid = static_cast<pid_t>(f.Int("broker_pid", 0));
  o.label = f.Str("label", "");
  f.CheckAllUsed();
  if (ack != "manual" && ack != "none") f.Die("--ack: manual or none");
  if (o.n <= 0 || o.size < 0 || o.window <= 0 || o.prefetch <= 0 ||
      o.prefetch > 65535 || o.ack_batch <= 0) {
    f.Die("-n, --window, --prefetch and --ack_batch must be positive");
  }
  if (f.mode() == "publish") return RunPublish(o, o.window, "publish");
  if (f.mode() == "publish-sync") return RunPublish(o, 1, "publish-sync");
  if (f.mode() == "stream") return RunStream(o);
  f.Die("unknown mode " + f.mode());
}

}  // namespace
}  // namespace amqpgw::bench

int main(int argc, char** argv) { return amqpgw::bench::Main(argc, argv); }
