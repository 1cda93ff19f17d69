#include "server/amqp/rabbit_connection.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/amqp/publish_frames.h"
#include "server/amqp/rabbitmq_convert.h"
#include "server/amqp/reply.h"

namespace amqpgw::amqp {

using internal::Bytes;
using internal::String;

struct RabbitConnection::Pool {
  Pool() { init_amqp_pool(&pool, 4096); }
  ~Pool() { empty_amqp_pool(&pool); }
  amqp_pool_t pool;
};

// A basic.deliver or basic.return waiting for its header and body frames.
struct RabbitConnection::PendingContent {
  bool is_return = false;
  // basic.get-ok (a Delivery too): the ready count it carried.
  bool is_get = false;
  uint32_t message_count = 0;
  bool have_header = false;
  uint64_t body_size = 0;
  Delivery delivery;
  ReturnedMessage returned;
  std::string* body() { return is_return ? &returned.body : &delivery.body; }
  Properties* properties() {
    return is_return ? &returned.properties : &delivery.properties;
  }
};

namespace {

timeval TimevalFrom(absl::Duration d) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(d));
  tv.tv_usec = static_cast<suseconds_t>(
      absl::ToInt64Microseconds(d - absl::Seconds(tv.tv_sec)));
  return tv;
}

amqp_table_entry_t BoolEntry(const char* key, bool value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e.value.value.boolean = value ? 1 : 0;
  return e;
}

amqp_table_entry_t Utf8Entry(const char* key, const char* value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes(value);
  return e;
}

amqp_table_entry_t TableEntry(const char* key, const amqp_table_t& value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_TABLE;
  e.value.value.table = value;
  return e;
}

std::string LookupString(const amqp_table_t* table, absl::string_view key) {
  if (table == nullptr) return "";
  for (int i = 0; i < table->num_entries; ++i) {
    const amqp_table_entry_t& e = table->entries[i];
    if (String(e.key) == key && (e.value.kind == AMQP_FIELD_KIND_UTF8 ||
                                 e.value.kind == AMQP_FIELD_KIND_BYTES)) {
      return String(e.value.value.bytes);
    }
  }
  return "";
}

// Why the TCP connection (and, for amqps, the TLS handshake) to `address`
// could not be opened.
absl::Status SocketOpenError(const BrokerAddress& address, int status,
                             absl::Duration timeout) {
  const std::string where = address.HostPort();
  switch (status) {
    case AMQP_STATUS_TIMEOUT:
      return absl::UnavailableError(absl::StrCat(
          "no answer from ", where, " within ", absl::FormatDuration(timeout),
          address.tls ? " while opening the TCP connection or during the TLS "
                        "handshake"
                      : " while opening the TCP connection",
          " (host down, or a firewall dropping packets?)"));
    case AMQP_STATUS_SOCKET_ERROR:
      return absl::UnavailableError(
          absl::StrCat("the TCP connection to ", where,
                       " failed: refused or unreachable (is RabbitMQ "
                       "listening on that port?)"));
    case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED:
      return absl::UnavailableError(
          absl::StrCat("cannot resolve the host name '", address.host, "'"));
    case AMQP_STATUS_SSL_CONNECTION_FAILED:
      return absl::UnavailableError(absl::StrCat(
          "TLS handshake with ", where, " failed: ", amqp_error_string2(status),
          " (a plain AMQP port? amqps:// needs the broker's TLS listener, "
          "usually 5671)"));
    default:
      // TLS certificate checks say what failed ("SSL peer cert verification
      // failed", "SSL hostname verification failed").
      return absl::UnavailableError(absl::StrCat(
          "cannot connect to ", where, ": ", amqp_error_string2(status)));
  }
}

// The steps of amqp_login after the socket is open. rabbitmq-c keeps the
// server properties of connection.start and the limits of connection.tune,
// so a failed login still shows how far it got.
enum class LoginStep { kHandshake, kLogin, kOpenVhost };

LoginStep StepReached(amqp_connection_state_t state) {
  const amqp_table_t* server = amqp_get_server_properties(state);
  if (server == nullptr || server->num_entries == 0) {
    return LoginStep::kHandshake;  // no connection.start yet
  }
  // channel_max is 0 until connection.tune is handled (we ask for > 0).
  if (amqp_get_channel_max(state) == 0) return LoginStep::kLogin;
  return LoginStep::kOpenVhost;
}

absl::Status LoginError(amqp_connection_state_t state,
                        const amqp_rpc_reply_t& reply,
                        const BrokerAddress& address, absl::Duration timeout) {
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
    if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
      return ReplyToStatus(m->reply_code, String(m->reply_text),
                           "broker refused the connection");
    }
    return absl::UnavailableError("broker refused the connection");
  }
  if (reply.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    return absl::UnavailableError("login failed");
  }
  const int error = reply.library_error;
  const std::string where = address.HostPort();
  // Where it stopped, what it waited for there ("no ..."), and what a
  // closed connection there usually means.
  std::string step;
  std::string awaited;
  std::string closed_why;
  const LoginStep reached = StepReached(state);
  switch (reached) {
    case LoginStep::kHandshake:
      step = "during the AMQP handshake";
      awaited = "connection.start";
      closed_why = address.tls ? "is it an AMQP port?"
                               : "is it an AMQP port? a TLS port needs "
                                 "amqps://";
      break;
    case LoginStep::kLogin:
      step = "during login";
      awaited = "reply to the credentials";
      closed_why = "wrong credentials?";
      break;
    case LoginStep::kOpenVhost:
      step = absl::StrCat("while opening vhost '", address.vhost, "'");
      awaited = "connection.open-ok";
      closed_why = "does the vhost exist, and may this user use it?";
      break;
  }
  if (error == AMQP_STATUS_TIMEOUT) {
    // The TCP connection is up, so the broker's host is; the broker is
    // frozen (paused, swapping, overloaded) or the port is not AMQP.
    return absl::UnavailableError(absl::StrCat(
        "the broker at ", where, " did not answer within ",
        absl::FormatDuration(timeout), " ", step, " (no ", awaited,
        "); it accepted the TCP connection, so it is there but not "
        "responding (stopped or overloaded",
        reached == LoginStep::kHandshake ? ", or not an AMQP port" : "", "?)"));
  }
  if (error == AMQP_STATUS_CONNECTION_CLOSED ||
      error == AMQP_STATUS_SOCKET_ERROR) {
    // RabbitMQ closes the socket on bad credentials unless the client
    // announces authentication_failure_close (we do), so this is rare.
    return absl::UnavailableError(absl::StrCat("the broker at ", where,
                                               " closed the connection ", step,
                                               " (", closed_why, ")"));
  }
  return absl::UnavailableError(absl::StrCat("connection to ", where,
                                             " failed ", step, ": ",
                                             amqp_error_string2(error)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> RabbitConnection::Open(
    const BrokerAddress& address, const OpenOptions& options) {
  amqp_connection_state_t state = amqp_new_connection();
  if (state == nullptr) return absl::ResourceExhaustedError("out of memory");
  // Owns `state` until the Connection takes it.
  std::unique_ptr<RabbitConnection> conn(new RabbitConnection(state, address));

  amqp_socket_t* socket = nullptr;
  if (address.tls) {
    socket = amqp_ssl_socket_new(state);
    if (socket == nullptr)
      return absl::InternalError("cannot create TLS socket");
    amqp_ssl_socket_set_verify_peer(socket, options.tls.verify_peer ? 1 : 0);
    amqp_ssl_socket_set_verify_hostname(socket,
                                        options.tls.verify_hostname ? 1 : 0);
    if (!options.tls.ca_file.empty() &&
        amqp_ssl_socket_set_cacert(socket, options.tls.ca_file.c_str()) !=
            AMQP_STATUS_OK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot load broker CA file '", options.tls.ca_file, "'"));
    }
    if (!options.tls.cert_file.empty() &&
        amqp_ssl_socket_set_key(socket, options.tls.cert_file.c_str(),
                                options.tls.key_file.c_str()) !=
            AMQP_STATUS_OK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot load broker client certificate '", options.tls.cert_file,
          "' / key '", options.tls.key_file, "'"));
    }
  } else {
    socket = amqp_tcp_socket_new(state);
    if (socket == nullptr) return absl::InternalError("cannot create socket");
  }

  timeval timeout = TimevalFrom(options.connect_timeout);
  int res = amqp_socket_open_noblock(socket, address.host.c_str(), address.port,
                                     &timeout);
  if (res != AMQP_STATUS_OK) {
    return SocketOpenError(address, res, options.connect_timeout);
  }
  amqp_set_handshake_timeout(state, &timeout);
  amqp_set_rpc_timeout(state, &timeout);

  // Capabilities the gateway relies on: broker-initiated basic.cancel,
  // connection.blocked, confirms with nacks, and a clean close on bad
  // credentials.
  amqp_table_entry_t caps[] = {
      BoolEntry("consumer_cancel_notify", 1),
      BoolEntry("connection.blocked", 1),
      BoolEntry("publisher_confirms", 1),
      BoolEntry("basic.nack", 1),
      BoolEntry("authentication_failure_close", 1),
  };
  amqp_table_t caps_table{static_cast<int>(std::size(caps)), caps};
  amqp_table_entry_t props[] = {
      Utf8Entry("product", "amqpgw"),
      Utf8Entry("version", AMQPGW_VERSION),
      Utf8Entry("connection_name", options.connection_name.c_str()),
      TableEntry("capabilities", caps_table),
  };
  amqp_table_t props_table{static_cast<int>(std::size(props)), props};

  int heartbeat_s = 0;
  if (options.heartbeat > absl::ZeroDuration()) {
    heartbeat_s = std::max<int>(1, absl::ToInt64Seconds(options.heartbeat));
  }
  amqp_rpc_reply_t reply = amqp_login_with_properties(
      state, address.vhost.c_str(), options.channel_max,
      static_cast<int>(options.frame_max), heartbeat_s, &props_table,
      AMQP_SASL_METHOD_PLAIN, address.user.c_str(), address.password.c_str());
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    return LoginError(state, reply, address, options.connect_timeout);
  }
  // Later sends are non-blocking from the protocol's point of view; only
  // Close() uses an RPC and sets its own timeout.
  amqp_set_rpc_timeout(state, nullptr);

  const amqp_table_t* server = amqp_get_server_properties(state);
  conn->server_info_.product = LookupString(server, "product");
  conn->server_info_.version = LookupString(server, "version");
  conn->server_info_.platform = LookupString(server, "platform");
  conn->server_info_.cluster_name = LookupString(server, "cluster_name");
  conn->heartbeat_ = absl::Seconds(amqp_get_heartbeat(state));
  conn->channel_max_ =
      static_cast<uint16_t>(std::min(amqp_get_channel_max(state), 65535));
  if (conn->channel_max_ == 0) conn->channel_max_ = 65535;
  conn->frame_max_ = static_cast<uint32_t>(amqp_get_frame_max(state));

  // A peer that stops acknowledging our writes (black-holed link) fails the
  // socket after two heartbeat intervals (a minute without heartbeats), even
  // when a send is blocked on a full buffer.
  absl::Duration user_timeout = conn->heartbeat_ > absl::ZeroDuration()
                                    ? conn->heartbeat_ * 2
                                    : absl::Seconds(60);
  unsigned int ms =
      static_cast<unsigned int>(absl::ToInt64Milliseconds(user_timeout));
  setsockopt(amqp_get_sockfd(state), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms,
             sizeof(ms));
  conn->write_timeout_ = user_timeout;
  if (!address.tls) {
    conn->encoder_ =
        std::make_unique<internal::PublishFrameEncoder>(conn->frame_max_);
  }
  return conn;
}

RabbitConnection::RabbitConnection(amqp_connection_state_t_* state,
                                   const BrokerAddress& address)
    : state_(state), address_(address), scratch_(std::make_unique<Pool>()) {}

RabbitConnection::~RabbitConnection() { amqp_destroy_connection(state_); }

int RabbitConnection::fd() const {
  return broken_.ok() ? amqp_get_sockfd(state_) : -1;
}

void RabbitConnection::Cork(bool on) {
  if (!broken_.ok()) return;
  if (encoder_ != nullptr) {
    corked_ = on;
    // An error fails the connection: status() says so, and the owner checks
    // it after each piece of work.
    if (!on) WriteHeld().IgnoreError();
    return;
  }
  int value = on ? 1 : 0;
  // Best effort: without it every message is simply its own segment.
  setsockopt(amqp_get_sockfd(state_), IPPROTO_TCP, TCP_CORK, &value,
             sizeof(value));
}

size_t RabbitConnection::UnsentBytes() const {
  if (!broken_.ok()) return 0;
  int unsent = 0;
  if (ioctl(amqp_get_sockfd(state_), SIOCOUTQNSD, &unsent) != 0) unsent = 0;
  return out_.size() + (unsent > 0 ? static_cast<size_t>(unsent) : 0);
}

absl::Status RabbitConnection::WriteHeld() {
  if (!broken_.ok()) return broken_;
  const int fd = amqp_get_sockfd(state_);
  // Set when the socket is first full: a write that goes out at once (the
  // usual case) reads no clock.
  absl::Time deadline = absl::InfiniteFuture();
  size_t done = 0;
  absl::Status failed;
  while (done < out_.size()) {
    ssize_t n = send(fd, out_.data() + done, out_.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      failed = ConnectionLostError(absl::StrCat(
          "basic.publish on ", address_.HostPort(), ": ", strerror(errno)));
      break;
    }
    // The socket's buffer is full (the owner stops publishing well before,
    // see UnsentBytes): wait for room.
    const absl::Time now = absl::Now();
    if (deadline == absl::InfiniteFuture()) deadline = now + write_timeout_;
    absl::Duration left = deadline - now;
    pollfd p{fd, POLLOUT, 0};
    int ready = left > absl::ZeroDuration()
                    ? poll(&p, 1,
                           static_cast<int>(std::max<int64_t>(
                               1, absl::ToInt64Milliseconds(left))))
                    : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      failed = ConnectionLostError(
          absl::StrCat("basic.publish on ", address_.HostPort(),
                       ": the socket took no bytes for ",
                       absl::FormatDuration(write_timeout_)));
      break;
    }
    if (ready < 0) {
      failed = ConnectionLostError(absl::StrCat(
          "basic.publish on ", address_.HostPort(), ": ", strerror(errno)));
      break;
    }
  }
  out_.clear();
  if (!failed.ok()) broken_ = failed;
  return broken_;
}

bool RabbitConnection::HasBufferedInput() const {
  return broken_.ok() &&
         (amqp_frames_enqueued(state_) || amqp_data_in_buffer(state_));
}

absl::Status RabbitConnection::Failed(int amqp_status,
                                      absl::string_view doing) {
  if (broken_.ok()) {
    if (amqp_status == AMQP_STATUS_HEARTBEAT_TIMEOUT) {
      broken_ = ConnectionLostError(
          absl::StrCat("no heartbeat from ", address_.HostPort(), " for ",
                       absl::FormatDuration(heartbeat_ * 2)));
    } else {
      broken_ = ConnectionLostError(
          absl::StrCat(doing, " on ", address_.HostPort(), ": ",
                       amqp_error_string2(amqp_status)));
    }
  }
  return broken_;
}

absl::Status RabbitConnection::SendMethod(uint16_t channel, uint32_t method_id,
                                          void* method,
                                          absl::string_view doing) {
  if (!out_.empty() && !WriteHeld().ok()) return broken_;
  if (!broken_.ok()) return broken_;
  int res = amqp_send_method(state_, channel, method_id, method);
  recycle_amqp_pool(&scratch_->pool);
  if (res != AMQP_STATUS_OK) return Failed(res, doing);
  return absl::OkStatus();
}

absl::StatusOr<bool> RabbitConnection::Read(Event* event) {
  // rabbitmq-c may answer a frame (heartbeat, close-ok) from inside the read.
  if (!out_.empty() && !WriteHeld().ok()) return broken_;
  if (!broken_.ok()) return broken_;
  for (;;) {
    amqp_frame_t frame;
    timeval zero{0, 0};
    int res = amqp_simple_wait_frame_noblock(state_, &frame, &zero);
    if (res == AMQP_STATUS_TIMEOUT) return false;
    if (res != AMQP_STATUS_OK) return Failed(res, "read");
    absl::StatusOr<bool> done = HandleFrame(&frame, event);
    // Everything useful was copied out of the channel's pool.
    amqp_maybe_release_buffers_on_channel(state_, frame.channel);
    if (!done.ok()) {
      if (broken_.ok()) broken_ = done.status();
      return broken_;
    }
    if (*done) return true;
  }
}

absl::StatusOr<bool> RabbitConnection::HandleFrame(const void* raw,
                                                   Event* event) {
  const amqp_frame_t& frame = *static_cast<const amqp_frame_t*>(raw);
  switch (frame.frame_type) {
    case AMQP_FRAME_METHOD:
      return HandleMethod(frame.channel, frame.payload.method.id,
                          frame.payload.method.decoded, event);
    case AMQP_FRAME_HEADER: {
      auto it = pending_.find(frame.channel);
      if (it == pending_.end() || it->second->have_header) {
        return ConnectionLostError(absl::StrCat(
            "protocol error: unexpected content header on channel ",
            frame.channel));
      }
      PendingContent& p = *it->second;
      p.have_header = true;
      p.body_size = frame.payload.properties.body_size;
      *p.properties() = internal::FromAmqpProperties(
          *static_cast<const amqp_basic_properties_t*>(
              frame.payload.properties.decoded));
      p.body()->reserve(p.body_size);
      break;
    }
    case AMQP_FRAME_BODY: {
      auto it = pending_.find(frame.channel);
      if (it == pending_.end() || !it->second->have_header) {
        return ConnectionLostError(
            absl::StrCat("protocol error: unexpected content body on channel ",
                         frame.channel));
      }
      it->second->body()->append(
          static_cast<const char*>(frame.payload.body_fragment.bytes),
          frame.payload.body_fragment.len);
      break;
    }
    default:
      return false;
  }
  // A header or body frame: is the content complete?
  auto it = pending_.find(frame.channel);
  PendingContent& p = *it->second;
  if (!p.have_header || p.body()->size() < p.body_size) return false;
  event->channel = frame.channel;
  if (p.is_return) {
    event->type = Event::Type::kBasicReturn;
    event->returned = std::move(p.returned);
  } else {
    event->type =
        p.is_get ? Event::Type::kBasicGetOk : Event::Type::kBasicDeliver;
    event->message_count = p.message_count;
    event->delivery = std::move(p.delivery);
  }
  pending_.erase(it);
  return true;
}

absl::StatusOr<bool> RabbitConnection::HandleMethod(uint16_t channel,
                                                    uint32_t id, void* decoded,
                                                    Event* event) {
  event->channel = channel;
  event->type = Event::Type::kOther;
  switch (id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* m = static_cast<amqp_connection_close_t*>(decoded);
      std::string text = String(m->reply_text);
      int code = m->reply_code;
      amqp_connection_close_ok_t ok{};
      amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      return BrokerClosedConnectionError(code, text);
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
      auto* m = static_cast<amqp_connection_blocked_t*>(decoded);
      event->type = Event::Type::kConnectionBlocked;
      event->blocked_reason = String(m->reason);
      return true;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
      event->type = Event::Type::kConnectionUnblocked;
      return true;
    case AMQP_CHANNEL_OPEN_OK_METHOD:
      event->type = Event::Type::kChannelOpenOk;
      return true;
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(decoded);
      event->type = Event::Type::kChannelClose;
      event->reply_code = m->reply_code;
      event->reply_text = String(m->reply_text);
      event->class_id = m->class_id;
      event->method_id = m->method_id;
      pending_.erase(channel);
      amqp_channel_close_ok_t ok{};
      int res =
          amqp_send_method(state_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      if (res != AMQP_STATUS_OK) return Failed(res, "channel.close-ok");
      return true;
    }
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
      event->type = Event::Type::kChannelCloseOk;
      pending_.erase(channel);
      return true;
    case AMQP_CONFIRM_SELECT_OK_METHOD:
      event->type = Event::Type::kConfirmSelectOk;
      return true;
    case AMQP_BASIC_QOS_OK_METHOD:
      event->type = Event::Type::kBasicQosOk;
      return true;
    case AMQP_BASIC_CONSUME_OK_METHOD:
      event->type = Event::Type::kBasicConsumeOk;
      event->consumer_tag =
          String(static_cast<amqp_basic_consume_ok_t*>(decoded)->consumer_tag);
      return true;
    case AMQP_BASIC_CANCEL_OK_METHOD:
      event->type = Event::Type::kBasicCancelOk;
      event->consumer_tag =
          String(static_cast<amqp_basic_cancel_ok_t*>(decoded)->consumer_tag);
      return true;
    case AMQP_BASIC_CANCEL_METHOD:
      event->type = Event::Type::kBasicCancel;
      event->consumer_tag =
          String(static_cast<amqp_basic_cancel_t*>(decoded)->consumer_tag);
      return true;
    case AMQP_BASIC_ACK_METHOD: {
      auto* m = static_cast<amqp_basic_ack_t*>(decoded);
      event->type = Event::Type::kBasicAck;
      event->delivery_tag = m->delivery_tag;
      event->multiple = m->multiple != 0;
      return true;
    }
    case AMQP_BASIC_NACK_METHOD: {
      auto* m = static_cast<amqp_basic_nack_t*>(decoded);
      event->type = Event::Type::kBasicNack;
      event->delivery_tag = m->delivery_tag;
      event->multiple = m->multiple != 0;
      return true;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
      auto* m = static_cast<amqp_basic_deliver_t*>(decoded);
      auto p = std::make_unique<PendingContent>();
      p->delivery.consumer_tag = String(m->consumer_tag);
      p->delivery.delivery_tag = m->delivery_tag;
      p->delivery.redelivered = m->redelivered != 0;
      p->delivery.exchange = String(m->exchange);
      p->delivery.routing_key = String(m->routing_key);
      pending_[channel] = std::move(p);
      return false;
    }
    case AMQP_BASIC_GET_OK_METHOD: {
      auto* m = static_cast<amqp_basic_get_ok_t*>(decoded);
      auto p = std::make_unique<PendingContent>();
      p->is_get = true;
      p->message_count = m->message_count;
      p->delivery.delivery_tag = m->delivery_tag;
      p->delivery.redelivered = m->redelivered != 0;
      p->delivery.exchange = String(m->exchange);
      p->delivery.routing_key = String(m->routing_key);
      pending_[channel] = std::move(p);
      return false;
    }
    case AMQP_BASIC_GET_EMPTY_METHOD:
      event->type = Event::Type::kBasicGetEmpty;
      return true;
    case AMQP_BASIC_RETURN_METHOD: {
      auto* m = static_cast<amqp_basic_return_t*>(decoded);
      auto p = std::make_unique<PendingContent>();
      p->is_return = true;
      p->returned.reply_code = m->reply_code;
      p->returned.reply_text = String(m->reply_text);
      p->returned.exchange = String(m->exchange);
      p->returned.routing_key = String(m->routing_key);
      pending_[channel] = std::move(p);
      return false;
    }
    case AMQP_QUEUE_DECLARE_OK_METHOD: {
      auto* m = static_cast<amqp_queue_declare_ok_t*>(decoded);
      event->type = Event::Type::kQueueDeclareOk;
      event->queue = String(m->queue);
      event->message_count = m->message_count;
      event->consumer_count = m->consumer_count;
      return true;
    }
    case AMQP_QUEUE_DELETE_OK_METHOD:
      event->type = Event::Type::kQueueDeleteOk;
      event->message_count =
          static_cast<amqp_queue_delete_ok_t*>(decoded)->message_count;
      return true;
    case AMQP_QUEUE_PURGE_OK_METHOD:
      event->type = Event::Type::kQueuePurgeOk;
      event->message_count =
          static_cast<amqp_queue_purge_ok_t*>(decoded)->message_count;
      return true;
    case AMQP_QUEUE_BIND_OK_METHOD:
      event->type = Event::Type::kQueueBindOk;
      return true;
    case AMQP_QUEUE_UNBIND_OK_METHOD:
      event->type = Event::Type::kQueueUnbindOk;
      return true;
    case AMQP_EXCHANGE_DECLARE_OK_METHOD:
      event->type = Event::Type::kExchangeDeclareOk;
      return true;
    case AMQP_EXCHANGE_DELETE_OK_METHOD:
      event->type = Event::Type::kExchangeDeleteOk;
      return true;
    default:
      return true;  // kOther
  }
}

absl::Status RabbitConnection::OpenChannel(uint16_t channel) {
  amqp_channel_open_t m{};
  m.out_of_band = amqp_empty_bytes;
  return SendMethod(channel, AMQP_CHANNEL_OPEN_METHOD, &m, "channel.open");
}

absl::Status RabbitConnection::CloseChannel(uint16_t channel) {
  amqp_channel_close_t m{};
  m.reply_code = AMQP_REPLY_SUCCESS;
  m.reply_text = amqp_cstring_bytes("closed by amqpgw");
  return SendMethod(channel, AMQP_CHANNEL_CLOSE_METHOD, &m, "channel.close");
}

absl::Status RabbitConnection::ConfirmSelect(uint16_t channel) {
  amqp_confirm_select_t m{};
  return SendMethod(channel, AMQP_CONFIRM_SELECT_METHOD, &m, "confirm.select");
}

absl::Status RabbitConnection::Qos(uint16_t channel, uint16_t prefetch_count,
                                   bool global) {
  amqp_basic_qos_t m{};
  m.prefetch_count = prefetch_count;
  m.global = global ? 1 : 0;
  return SendMethod(channel, AMQP_BASIC_QOS_METHOD, &m, "basic.qos");
}

absl::Status RabbitConnection::Consume(uint16_t channel,
                                       const ConsumeArgs& args) {
  amqp_basic_consume_t m{};
  m.queue = Bytes(args.queue);
  m.consumer_tag = Bytes(args.consumer_tag);
  m.no_ack = args.no_ack;
  m.exclusive = args.exclusive;
  absl::Status s =
      internal::ToAmqpTable(args.arguments, &scratch_->pool, &m.arguments);
  if (!s.ok()) return s;
  return SendMethod(channel, AMQP_BASIC_CONSUME_METHOD, &m, "basic.consume");
}

absl::Status RabbitConnection::Cancel(uint16_t channel,
                                      absl::string_view consumer_tag) {
  amqp_basic_cancel_t m{};
  m.consumer_tag = Bytes(consumer_tag);
  return SendMethod(channel, AMQP_BASIC_CANCEL_METHOD, &m, "basic.cancel");
}

absl::Status RabbitConnection::BasicGet(uint16_t channel,
                                        absl::string_view queue, bool no_ack) {
  amqp_basic_get_t m{};
  m.queue = Bytes(queue);
  m.no_ack = no_ack;
  return SendMethod(channel, AMQP_BASIC_GET_METHOD, &m, "basic.get");
}

absl::Status RabbitConnection::Ack(uint16_t channel, uint64_t delivery_tag,
                                   bool multiple) {
  amqp_basic_ack_t m{};
  m.delivery_tag = delivery_tag;
  m.multiple = multiple;
  return SendMethod(channel, AMQP_BASIC_ACK_METHOD, &m, "basic.ack");
}

absl::Status RabbitConnection::Nack(uint16_t channel, uint64_t delivery_tag,
                                    bool multiple, bool requeue) {
  amqp_basic_nack_t m{};
  m.delivery_tag = delivery_tag;
  m.multiple = multiple;
  m.requeue = requeue;
  return SendMethod(channel, AMQP_BASIC_NACK_METHOD, &m, "basic.nack");
}

absl::Status RabbitConnection::Publish(uint16_t channel,
                                       const OutgoingMessage& message) {
  if (!broken_.ok()) return broken_;
  amqp_basic_properties_t props;
  absl::Status s =
      internal::ToAmqpProperties(message.properties, &scratch_->pool, &props);
  if (!s.ok()) {
    recycle_amqp_pool(&scratch_->pool);
    return s;
  }
  if (encoder_ != nullptr) {
    amqp_basic_publish_t m{};
    m.exchange = Bytes(message.exchange);
    m.routing_key = Bytes(message.routing_key);
    m.mandatory = message.mandatory;
    int res =
        encoder_->AppendHead(channel, m, props, message.body.size(), &out_);
    recycle_amqp_pool(&scratch_->pool);
    if (res != AMQP_STATUS_OK) {
      // Nothing was held: the connection is still usable.
      return absl::InvalidArgumentError(
          absl::StrCat("message cannot be encoded: ", amqp_error_string2(res)));
    }
    // A large body leaves kMaxHeldBytes at a time, not held whole.
    const amqp_bytes_t body = Bytes(message.body);
    for (size_t offset = 0;;) {
      offset =
          encoder_->AppendBody(channel, body, offset, kMaxHeldBytes, &out_);
      if (offset == body.len) break;
      absl::Status s = WriteHeld();
      if (!s.ok()) return s;
    }
    if (!corked_ || out_.size() >= kMaxHeldBytes) return WriteHeld();
    return absl::OkStatus();
  }
  int res = amqp_basic_publish(state_, channel, Bytes(message.exchange),
                               Bytes(message.routing_key), message.mandatory,
                               /*immediate=*/0, &props, Bytes(message.body));
  recycle_amqp_pool(&scratch_->pool);
  if (res != AMQP_STATUS_OK) return Failed(res, "basic.publish");
  return absl::OkStatus();
}

absl::Status RabbitConnection::DeclareQueue(uint16_t channel,
                                            const QueueDeclareArgs& args) {
  amqp_queue_declare_t m{};
  m.queue = Bytes(args.name);
  m.passive = args.passive;
  m.durable = args.durable;
  m.exclusive = args.exclusive;
  m.auto_delete = args.auto_delete;
  absl::Status s =
      internal::ToAmqpTable(args.arguments, &scratch_->pool, &m.arguments);
  if (!s.ok()) return s;
  return SendMethod(channel, AMQP_QUEUE_DECLARE_METHOD, &m, "queue.declare");
}

absl::Status RabbitConnection::DeleteQueue(uint16_t channel,
                                           absl::string_view queue,
                                           bool if_unused, bool if_empty) {
  amqp_queue_delete_t m{};
  m.queue = Bytes(queue);
  m.if_unused = if_unused;
  m.if_empty = if_empty;
  return SendMethod(channel, AMQP_QUEUE_DELETE_METHOD, &m, "queue.delete");
}

absl::Status RabbitConnection::PurgeQueue(uint16_t channel,
                                          absl::string_view queue) {
  amqp_queue_purge_t m{};
  m.queue = Bytes(queue);
  return SendMethod(channel, AMQP_QUEUE_PURGE_METHOD, &m, "queue.purge");
}

absl::Status RabbitConnection::BindQueue(uint16_t channel,
                                         const BindArgs& args) {
  amqp_queue_bind_t m{};
  m.queue = Bytes(args.queue);
  m.exchange = Bytes(args.exchange);
  m.routing_key = Bytes(args.routing_key);
  absl::Status s =
      internal::ToAmqpTable(args.arguments, &scratch_->pool, &m.arguments);
  if (!s.ok()) return s;
  return SendMethod(channel, AMQP_QUEUE_BIND_METHOD, &m, "queue.bind");
}

absl::Status RabbitConnection::UnbindQueue(uint16_t channel,
                                           const BindArgs& args) {
  amqp_queue_unbind_t m{};
  m.queue = Bytes(args.queue);
  m.exchange = Bytes(args.exchange);
  m.routing_key = Bytes(args.routing_key);
  absl::Status s =
      internal::ToAmqpTable(args.arguments, &scratch_->pool, &m.arguments);
  if (!s.ok()) return s;
  return SendMethod(channel, AMQP_QUEUE_UNBIND_METHOD, &m, "queue.unbind");
}

absl::Status RabbitConnection::DeclareExchange(
    uint16_t channel, const ExchangeDeclareArgs& args) {
  amqp_exchange_declare_t m{};
  m.exchange = Bytes(args.name);
  m.type = Bytes(args.type);
  m.passive = args.passive;
  m.durable = args.durable;
  m.auto_delete = args.auto_delete;
  m.internal = args.internal;
  absl::Status s =
      internal::ToAmqpTable(args.arguments, &scratch_->pool, &m.arguments);
  if (!s.ok()) return s;
  return SendMethod(channel, AMQP_EXCHANGE_DECLARE_METHOD, &m,
                    "exchange.declare");
}

absl::Status RabbitConnection::DeleteExchange(uint16_t channel,
                                              absl::string_view exchange,
                                              bool if_unused) {
  amqp_exchange_delete_t m{};
  m.exchange = Bytes(exchange);
  m.if_unused = if_unused;
  return SendMethod(channel, AMQP_EXCHANGE_DELETE_METHOD, &m,
                    "exchange.delete");
}

void RabbitConnection::Close(absl::Duration timeout) {
  if (!out_.empty()) WriteHeld().IgnoreError();
  if (!broken_.ok()) return;
  timeval tv = TimevalFrom(timeout);
  amqp_set_rpc_timeout(state_, &tv);
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  broken_ = absl::UnavailableError("connection closed by amqpgw");
}

}  // namespace amqpgw::amqp
