#include "server/amqp/testing/fake_connection.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/amqp/codec.h"
#include "server/amqp/reply.h"

namespace amqpgw::amqp::testing {

const char* SentKindName(Sent::Kind kind) {
  switch (kind) {
    case Sent::Kind::kChannelOpen:
      return "channel.open";
    case Sent::Kind::kChannelClose:
      return "channel.close";
    case Sent::Kind::kConfirmSelect:
      return "confirm.select";
    case Sent::Kind::kQos:
      return "basic.qos";
    case Sent::Kind::kConsume:
      return "basic.consume";
    case Sent::Kind::kCancel:
      return "basic.cancel";
    case Sent::Kind::kAck:
      return "basic.ack";
    case Sent::Kind::kNack:
      return "basic.nack";
    case Sent::Kind::kPublish:
      return "basic.publish";
    case Sent::Kind::kQueueDeclare:
      return "queue.declare";
    case Sent::Kind::kQueueDelete:
      return "queue.delete";
    case Sent::Kind::kQueuePurge:
      return "queue.purge";
    case Sent::Kind::kQueueBind:
      return "queue.bind";
    case Sent::Kind::kQueueUnbind:
      return "queue.unbind";
    case Sent::Kind::kExchangeDeclare:
      return "exchange.declare";
    case Sent::Kind::kExchangeDelete:
      return "exchange.delete";
    case Sent::Kind::kBasicGet:
      return "basic.get";
  }
  return "?";
}

namespace {

// The (class id, method id) of the method `kind` stands for.
std::pair<uint16_t, uint16_t> MethodId(Sent::Kind kind) {
  using K = Sent::Kind;
  switch (kind) {
    case K::kChannelOpen:
      return {20, 10};
    case K::kChannelClose:
      return {20, 40};
    case K::kConfirmSelect:
      return {85, 10};
    case K::kQos:
      return {60, 10};
    case K::kConsume:
      return {60, 20};
    case K::kCancel:
      return {60, 30};
    case K::kPublish:
      return {60, 40};
    case K::kAck:
      return {60, 80};
    case K::kNack:
      return {60, 120};
    case K::kQueueDeclare:
      return {50, 10};
    case K::kQueueBind:
      return {50, 20};
    case K::kQueuePurge:
      return {50, 30};
    case K::kQueueDelete:
      return {50, 40};
    case K::kQueueUnbind:
      return {50, 50};
    case K::kExchangeDeclare:
      return {40, 10};
    case K::kExchangeDelete:
      return {40, 20};
    case K::kBasicGet:
      return {60, 70};
  }
  return {0, 0};
}

// Waits on `cv` until `done()` or `deadline`; returns done().
template <typename Done>
bool WaitOn(amqpgw::Mutex* mu, amqpgw::CondVar* cv, absl::Time deadline,
            Done done) {
  while (!done()) {
    if (cv->WaitWithDeadline(mu, deadline)) return done();
  }
  return true;
}

Event MakeEvent(Event::Type type, uint16_t channel) {
  Event e;
  e.type = type;
  e.channel = channel;
  return e;
}

// The name a refusal matches: the queue or exchange the method names.
const std::string& NameOf(const Sent& s) {
  switch (s.kind) {
    case Sent::Kind::kPublish:
      return s.message.exchange;
    case Sent::Kind::kQueueBind:
    case Sent::Kind::kQueueUnbind:
      return s.bind.queue;
    case Sent::Kind::kConsume:
      return s.consume.queue;
    default:
      return s.name;
  }
}

}  // namespace

// --- FakePeer ---

FakePeer::FakePeer(BrokerAddress address, std::string connection_name,
                   Options options)
    : address_(std::move(address)),
      connection_name_(std::move(connection_name)),
      options_(std::move(options)),
      auto_confirm_(options_.auto_confirm) {
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) std::abort();
}

FakePeer::~FakePeer() { close(event_fd_); }

std::vector<Sent> FakePeer::sent() const {
  amqpgw::MutexLock lock(&mu_);
  return sent_;
}

std::vector<Sent> FakePeer::sent(Sent::Kind kind) const {
  amqpgw::MutexLock lock(&mu_);
  std::vector<Sent> out;
  for (const Sent& s : sent_) {
    if (s.kind == kind) out.push_back(s);
  }
  return out;
}

size_t FakePeer::count(Sent::Kind kind) const {
  amqpgw::MutexLock lock(&mu_);
  return std::count_if(sent_.begin(), sent_.end(),
                       [kind](const Sent& s) { return s.kind == kind; });
}

bool FakePeer::WaitUntil(
    const std::function<bool(const std::vector<Sent>&)>& condition,
    absl::Duration timeout) {
  amqpgw::MutexLock lock(&mu_);
  return WaitOn(
      &mu_, &changed_, absl::Now() + timeout,
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return condition(sent_); });
}

bool FakePeer::WaitForCount(Sent::Kind kind, size_t n, absl::Duration timeout) {
  return WaitUntil(
      [&](const std::vector<Sent>& sent) {
        return static_cast<size_t>(std::count_if(
                   sent.begin(), sent.end(),
                   [&](const Sent& s) { return s.kind == kind; })) >= n;
      },
      timeout);
}

bool FakePeer::WaitUntilRead(absl::Duration timeout) {
  amqpgw::MutexLock lock(&mu_);
  return WaitOn(&mu_, &changed_, absl::Now() + timeout,
                [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                  return inbound_.empty() || !broken_.ok();
                });
}

uint16_t FakePeer::channel_of(Sent::Kind kind) const {
  amqpgw::MutexLock lock(&mu_);
  for (auto it = sent_.rbegin(); it != sent_.rend(); ++it) {
    if (it->kind == kind) return it->channel;
  }
  return 0;
}

std::set<uint16_t> FakePeer::open_channels() const {
  amqpgw::MutexLock lock(&mu_);
  std::set<uint16_t> out;
  for (const auto& [ch, state] : channels_) out.insert(ch);
  return out;
}

bool FakePeer::closed_by_gateway() const {
  amqpgw::MutexLock lock(&mu_);
  return closed_by_gateway_;
}

bool FakePeer::destroyed() const {
  amqpgw::MutexLock lock(&mu_);
  return destroyed_;
}

bool FakePeer::WaitForDestroyed(absl::Duration timeout) {
  amqpgw::MutexLock lock(&mu_);
  return WaitOn(&mu_, &changed_, absl::Now() + timeout,
                [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return destroyed_; });
}

std::vector<uint64_t> FakePeer::unacked(uint16_t channel) const {
  amqpgw::MutexLock lock(&mu_);
  auto it = channels_.find(channel);
  if (it == channels_.end()) return {};
  return it->second.unacked;
}

std::vector<std::pair<uint16_t, uint64_t>> FakePeer::requeued() const {
  amqpgw::MutexLock lock(&mu_);
  return requeued_;
}

void FakePeer::Changed() { changed_.SignalAll(); }

void FakePeer::PushLocked(Inbound in) {
  inbound_.push_back(std::move(in));
  uint64_t one = 1;
  ssize_t r = write(event_fd_, &one, sizeof(one));
  (void)r;
  Changed();
}

void FakePeer::Push(Event event) {
  amqpgw::MutexLock lock(&mu_);
  PushLocked(std::move(event));
}

void FakePeer::Confirm(uint16_t channel, uint64_t seq, bool multiple) {
  Event e = MakeEvent(Event::Type::kBasicAck, channel);
  e.delivery_tag = seq;
  e.multiple = multiple;
  Push(std::move(e));
}

void FakePeer::NackPublish(uint16_t channel, uint64_t seq, bool multiple) {
  Event e = MakeEvent(Event::Type::kBasicNack, channel);
  e.delivery_tag = seq;
  e.multiple = multiple;
  Push(std::move(e));
}

void FakePeer::Return(uint16_t channel, uint64_t seq, uint16_t reply_code,
                      std::string reply_text) {
  amqpgw::MutexLock lock(&mu_);
  Event e = MakeEvent(Event::Type::kBasicReturn, channel);
  for (auto it = sent_.rbegin(); it != sent_.rend(); ++it) {
    if (it->kind == Sent::Kind::kPublish && it->channel == channel &&
        it->seq == seq) {
      e.returned.exchange = it->message.exchange;
      e.returned.routing_key = it->message.routing_key;
      e.returned.properties = it->message.properties;
      e.returned.body = it->message.body;
      break;
    }
  }
  e.returned.reply_code = reply_code;
  e.returned.reply_text = std::move(reply_text);
  PushLocked(std::move(e));
}

uint64_t FakePeer::Deliver(uint16_t channel, std::string body, bool redelivered,
                           Properties properties) {
  amqpgw::MutexLock lock(&mu_);
  auto it = channels_.find(channel);
  if (it == channels_.end() || it->second.consumer_tag.empty()) return 0;
  ChannelState& st = it->second;
  Event e = MakeEvent(Event::Type::kBasicDeliver, channel);
  e.delivery.consumer_tag = st.consumer_tag;
  e.delivery.delivery_tag = st.next_delivery_tag++;
  e.delivery.redelivered = redelivered;
  e.delivery.routing_key = "fake";
  e.delivery.properties = std::move(properties);
  e.delivery.body = std::move(body);
  st.unacked.push_back(e.delivery.delivery_tag);
  uint64_t tag = e.delivery.delivery_tag;
  PushLocked(std::move(e));
  return tag;
}

void FakePeer::CancelConsumer(uint16_t channel) {
  amqpgw::MutexLock lock(&mu_);
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  Event e = MakeEvent(Event::Type::kBasicCancel, channel);
  e.consumer_tag = it->second.consumer_tag;
  PushLocked(std::move(e));
}

void FakePeer::CloseChannel(uint16_t channel, uint16_t reply_code,
                            std::string reply_text, uint16_t class_id,
                            uint16_t method_id) {
  amqpgw::MutexLock lock(&mu_);
  ForgetChannel(channel);
  Event e = MakeEvent(Event::Type::kChannelClose, channel);
  e.reply_code = reply_code;
  e.reply_text = std::move(reply_text);
  e.class_id = class_id;
  e.method_id = method_id;
  PushLocked(std::move(e));
}

void FakePeer::Block(std::string reason) {
  Event e = MakeEvent(Event::Type::kConnectionBlocked, 0);
  e.blocked_reason = std::move(reason);
  Push(std::move(e));
}

void FakePeer::set_unsent_bytes(size_t bytes) {
  amqpgw::MutexLock lock(&mu_);
  unsent_bytes_ = bytes;
  Changed();
}

size_t FakePeer::unsent_bytes() const {
  amqpgw::MutexLock lock(&mu_);
  return unsent_bytes_;
}

void FakePeer::Unblock() {
  Push(MakeEvent(Event::Type::kConnectionUnblocked, 0));
}

void FakePeer::CloseConnection(uint16_t reply_code, std::string reply_text) {
  amqpgw::MutexLock lock(&mu_);
  PushLocked(BrokerClosedConnectionError(reply_code, reply_text));
}

void FakePeer::Drop(std::string why) {
  amqpgw::MutexLock lock(&mu_);
  dropped_ = ConnectionLostError(
      absl::StrCat("read on ", address_.HostPort(), ": ", why));
  PushLocked(dropped_);
}

void FakePeer::Hold(Sent::Kind kind) {
  amqpgw::MutexLock lock(&mu_);
  held_kinds_.insert(kind);
}

void FakePeer::ReleaseHeld() {
  amqpgw::MutexLock lock(&mu_);
  held_kinds_.clear();
  std::vector<Event> held = std::move(held_);
  held_.clear();
  for (Event& e : held) PushLocked(std::move(e));
  Changed();
}

void FakePeer::Refuse(Sent::Kind kind, uint16_t reply_code,
                      std::string reply_text, std::string name, int count) {
  amqpgw::MutexLock lock(&mu_);
  refusals_.push_back(
      Refusal{kind, std::move(name), reply_code, std::move(reply_text), count});
}

void FakePeer::set_auto_confirm(bool on) {
  amqpgw::MutexLock lock(&mu_);
  auto_confirm_ = on;
}

void FakePeer::Fail(const absl::Status& why) {
  if (!broken_.ok()) return;
  broken_ = why;
  std::vector<uint16_t> open;
  for (const auto& [ch, state] : channels_) open.push_back(ch);
  for (uint16_t ch : open) ForgetChannel(ch);
  Changed();
}

void FakePeer::ForgetChannel(uint16_t channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  for (uint64_t tag : it->second.unacked) requeued_.emplace_back(channel, tag);
  SettleGotten(it->second, it->second.unacked, /*requeue=*/true);
  channels_.erase(it);
}

void FakePeer::SettleGotten(ChannelState& channel,
                            const std::vector<uint64_t>& tags, bool requeue) {
  // Last first, each in front: the queue gets them back in order.
  for (auto t = tags.rbegin(); t != tags.rend(); ++t) {
    auto g = channel.gotten.find(*t);
    if (g == channel.gotten.end()) continue;
    if (requeue) {
      g->second.second.redelivered = true;
      queues_[g->second.first].push_front(std::move(g->second.second));
    }
    channel.gotten.erase(g);
  }
}

void FakePeer::AddMessages(const std::string& queue,
                           std::vector<QueuedMessage> messages) {
  amqpgw::MutexLock lock(&mu_);
  auto& q = queues_[queue];
  for (auto& m : messages) q.push_back(std::move(m));
  Changed();
}

std::vector<QueuedMessage> FakePeer::queue(const std::string& name) const {
  amqpgw::MutexLock lock(&mu_);
  auto it = queues_.find(name);
  if (it == queues_.end()) return {};
  return std::vector<QueuedMessage>(it->second.begin(), it->second.end());
}

void FakePeer::Settle(uint16_t channel, uint64_t tag, bool multiple,
                      bool requeue) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  std::vector<uint64_t>& unacked = it->second.unacked;
  auto pos = std::find(unacked.begin(), unacked.end(), tag);
  if (pos == unacked.end()) {
    // RabbitMQ's answer to an ack of a tag the channel does not have.
    ForgetChannel(channel);
    Event e = MakeEvent(Event::Type::kChannelClose, channel);
    e.reply_code = kPreconditionFailed;
    e.reply_text =
        absl::StrCat("PRECONDITION_FAILED - unknown delivery tag ", tag);
    PushLocked(std::move(e));
    return;
  }
  auto first = multiple ? unacked.begin() : pos;
  if (requeue) {
    for (auto i = first; i <= pos; ++i) requeued_.emplace_back(channel, *i);
  }
  SettleGotten(it->second, std::vector<uint64_t>(first, pos + 1), requeue);
  unacked.erase(first, pos + 1);
}

void FakePeer::Reply(Sent::Kind kind, Event event) {
  if (held_kinds_.count(kind) > 0) {
    held_.push_back(std::move(event));
    return;
  }
  PushLocked(std::move(event));
}

void FakePeer::Answer(const Sent& s) {
  using K = Sent::Kind;
  using T = Event::Type;
  const uint16_t ch = s.channel;
  if (s.kind != K::kChannelOpen && channels_.count(ch) == 0) {
    return;  // a closed channel: the broker ignores what arrives on it
  }
  for (auto it = refusals_.begin(); it != refusals_.end(); ++it) {
    if (it->kind != s.kind || (!it->name.empty() && it->name != NameOf(s))) {
      continue;
    }
    Event e = MakeEvent(T::kChannelClose, ch);
    e.reply_code = it->reply_code;
    e.reply_text = it->reply_text;
    // channel.close names the refused method, as RabbitMQ's does.
    std::tie(e.class_id, e.method_id) = MethodId(s.kind);
    if (--it->count <= 0) refusals_.erase(it);
    ForgetChannel(ch);
    Reply(s.kind, std::move(e));
    return;
  }
  switch (s.kind) {
    case K::kChannelOpen:
      channels_[ch] = ChannelState();
      Reply(s.kind, MakeEvent(T::kChannelOpenOk, ch));
      return;
    case K::kChannelClose:
      ForgetChannel(ch);
      Reply(s.kind, MakeEvent(T::kChannelCloseOk, ch));
      return;
    case K::kConfirmSelect:
      channels_[ch].confirm = true;
      Reply(s.kind, MakeEvent(T::kConfirmSelectOk, ch));
      return;
    case K::kQos:
      Reply(s.kind, MakeEvent(T::kBasicQosOk, ch));
      return;
    case K::kConsume: {
      Event e = MakeEvent(T::kBasicConsumeOk, ch);
      e.consumer_tag = s.consume.consumer_tag.empty()
                           ? absl::StrCat("amq.ctag-", next_generated_++)
                           : s.consume.consumer_tag;
      channels_[ch].consumer_tag = e.consumer_tag;
      Reply(s.kind, std::move(e));
      return;
    }
    case K::kCancel: {
      Event e = MakeEvent(T::kBasicCancelOk, ch);
      e.consumer_tag = s.name;
      channels_[ch].consumer_tag.clear();
      Reply(s.kind, std::move(e));
      return;
    }
    case K::kAck:
      Settle(ch, s.delivery_tag, s.multiple, /*requeue=*/false);
      return;
    case K::kNack:
      Settle(ch, s.delivery_tag, s.multiple, s.requeue);
      return;
    case K::kPublish:
      if (s.seq != 0 && auto_confirm_) {
        Event e = MakeEvent(T::kBasicAck, ch);
        e.delivery_tag = s.seq;
        Reply(s.kind, std::move(e));
      }
      return;
    case K::kBasicGet: {
      auto q = queues_.find(s.name);
      if (q == queues_.end() || q->second.empty()) {
        Reply(s.kind, MakeEvent(T::kBasicGetEmpty, ch));
        return;
      }
      ChannelState& state = channels_[ch];
      Event e = MakeEvent(T::kBasicGetOk, ch);
      QueuedMessage m = std::move(q->second.front());
      q->second.pop_front();
      e.message_count = static_cast<uint32_t>(q->second.size());
      e.delivery.delivery_tag = state.next_delivery_tag++;
      e.delivery.redelivered = m.redelivered;
      e.delivery.routing_key = s.name;
      e.delivery.properties = m.properties;
      e.delivery.body = m.body;
      if (!s.no_ack) {
        state.unacked.push_back(e.delivery.delivery_tag);
        state.gotten[e.delivery.delivery_tag] = {s.name, std::move(m)};
      }
      Reply(s.kind, std::move(e));
      return;
    }
    case K::kQueueDeclare: {
      Event e = MakeEvent(T::kQueueDeclareOk, ch);
      e.queue =
          s.name.empty() ? absl::StrCat("amq.gen-", next_generated_++) : s.name;
      if (auto q = queues_.find(e.queue); q != queues_.end()) {
        e.message_count = static_cast<uint32_t>(q->second.size());
      }
      Reply(s.kind, std::move(e));
      return;
    }
    case K::kQueueDelete:
      Reply(s.kind, MakeEvent(T::kQueueDeleteOk, ch));
      return;
    case K::kQueuePurge:
      Reply(s.kind, MakeEvent(T::kQueuePurgeOk, ch));
      return;
    case K::kQueueBind:
      Reply(s.kind, MakeEvent(T::kQueueBindOk, ch));
      return;
    case K::kQueueUnbind:
      Reply(s.kind, MakeEvent(T::kQueueUnbindOk, ch));
      return;
    case K::kExchangeDeclare:
      Reply(s.kind, MakeEvent(T::kExchangeDeclareOk, ch));
      return;
    case K::kExchangeDelete:
      Reply(s.kind, MakeEvent(T::kExchangeDeleteOk, ch));
      return;
  }
}

absl::Status FakePeer::Record(Sent s) {
  amqpgw::MutexLock lock(&mu_);
  if (!broken_.ok()) return broken_;
  if (!dropped_.ok()) {
    Fail(dropped_);
    return broken_;
  }
  if (s.kind == Sent::Kind::kPublish) {
    auto it = channels_.find(s.channel);
    if (it != channels_.end() && it->second.confirm) {
      s.seq = it->second.next_seq++;
    }
  }
  sent_.push_back(std::move(s));
  Answer(sent_.back());
  Changed();
  return absl::OkStatus();
}

absl::StatusOr<bool> FakePeer::Read(Event* event) {
  amqpgw::MutexLock lock(&mu_);
  if (!broken_.ok()) return broken_;
  if (inbound_.empty()) {
    uint64_t v;
    ssize_t r = read(event_fd_, &v, sizeof(v));
    (void)r;
    return false;
  }
  Inbound in = std::move(inbound_.front());
  inbound_.pop_front();
  if (inbound_.empty()) {
    uint64_t v;
    ssize_t r = read(event_fd_, &v, sizeof(v));
    (void)r;
  }
  Changed();
  if (absl::Status* failure = std::get_if<absl::Status>(&in)) {
    Fail(*failure);
    return broken_;
  }
  *event = std::move(std::get<Event>(in));
  return true;
}

bool FakePeer::HasBufferedInput() const {
  amqpgw::MutexLock lock(&mu_);
  return broken_.ok() && !inbound_.empty();
}

int FakePeer::fd() const {
  amqpgw::MutexLock lock(&mu_);
  return broken_.ok() ? event_fd_ : -1;
}

void FakePeer::Close() {
  amqpgw::MutexLock lock(&mu_);
  closed_by_gateway_ = true;
  Fail(absl::UnavailableError("connection closed by amqpgw"));
}

void FakePeer::Destroyed() {
  amqpgw::MutexLock lock(&mu_);
  destroyed_ = true;
  Fail(absl::UnavailableError("connection destroyed by amqpgw"));
  Changed();
}

// --- FakeConnection ---

FakeConnection::FakeConnection(std::shared_ptr<FakePeer> peer)
    : peer_(std::move(peer)) {}

FakeConnection::~FakeConnection() { peer_->Destroyed(); }

namespace {

Sent Method(Sent::Kind kind, uint16_t channel) {
  Sent s;
  s.kind = kind;
  s.channel = channel;
  return s;
}

// What RabbitConnection refuses before sending: a table it cannot encode.
absl::Status Encodable(const FieldTable& table) {
  return EncodeFieldTable(table).status();
}

}  // namespace

absl::Status FakeConnection::OpenChannel(uint16_t channel) {
  return peer_->Record(Method(Sent::Kind::kChannelOpen, channel));
}

absl::Status FakeConnection::CloseChannel(uint16_t channel) {
  return peer_->Record(Method(Sent::Kind::kChannelClose, channel));
}

absl::Status FakeConnection::ConfirmSelect(uint16_t channel) {
  return peer_->Record(Method(Sent::Kind::kConfirmSelect, channel));
}

absl::Status FakeConnection::Qos(uint16_t channel, uint16_t prefetch_count,
                                 bool global) {
  Sent s = Method(Sent::Kind::kQos, channel);
  s.prefetch = prefetch_count;
  s.global = global;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::Consume(uint16_t channel,
                                     const ConsumeArgs& args) {
  absl::Status encodable = Encodable(args.arguments);
  if (!encodable.ok()) return encodable;
  Sent s = Method(Sent::Kind::kConsume, channel);
  s.consume = args;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::Cancel(uint16_t channel,
                                    absl::string_view consumer_tag) {
  Sent s = Method(Sent::Kind::kCancel, channel);
  s.name = std::string(consumer_tag);
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::BasicGet(uint16_t channel, absl::string_view queue,
                                      bool no_ack) {
  Sent s = Method(Sent::Kind::kBasicGet, channel);
  s.name = std::string(queue);
  s.no_ack = no_ack;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::Ack(uint16_t channel, uint64_t delivery_tag,
                                 bool multiple) {
  Sent s = Method(Sent::Kind::kAck, channel);
  s.delivery_tag = delivery_tag;
  s.multiple = multiple;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::Nack(uint16_t channel, uint64_t delivery_tag,
                                  bool multiple, bool requeue) {
  Sent s = Method(Sent::Kind::kNack, channel);
  s.delivery_tag = delivery_tag;
  s.multiple = multiple;
  s.requeue = requeue;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::Publish(uint16_t channel,
                                     const OutgoingMessage& message) {
  absl::Status encodable = EncodeProperties(message.properties).status();
  if (!encodable.ok()) return encodable;
  Sent s = Method(Sent::Kind::kPublish, channel);
  s.message = message;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::DeclareQueue(uint16_t channel,
                                          const QueueDeclareArgs& args) {
  absl::Status encodable = Encodable(args.arguments);
  if (!encodable.ok()) return encodable;
  Sent s = Method(Sent::Kind::kQueueDeclare, channel);
  s.name = args.name;
  s.queue = args;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::DeleteQueue(uint16_t channel,
                                         absl::string_view queue,
                                         bool if_unused, bool if_empty) {
  Sent s = Method(Sent::Kind::kQueueDelete, channel);
  s.name = std::string(queue);
  s.if_unused = if_unused;
  s.if_empty = if_empty;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::PurgeQueue(uint16_t channel,
                                        absl::string_view queue) {
  Sent s = Method(Sent::Kind::kQueuePurge, channel);
  s.name = std::string(queue);
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::BindQueue(uint16_t channel, const BindArgs& args) {
  absl::Status encodable = Encodable(args.arguments);
  if (!encodable.ok()) return encodable;
  Sent s = Method(Sent::Kind::kQueueBind, channel);
  s.bind = args;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::UnbindQueue(uint16_t channel,
                                         const BindArgs& args) {
  absl::Status encodable = Encodable(args.arguments);
  if (!encodable.ok()) return encodable;
  Sent s = Method(Sent::Kind::kQueueUnbind, channel);
  s.bind = args;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::DeclareExchange(uint16_t channel,
                                             const ExchangeDeclareArgs& args) {
  absl::Status encodable = Encodable(args.arguments);
  if (!encodable.ok()) return encodable;
  Sent s = Method(Sent::Kind::kExchangeDeclare, channel);
  s.name = args.name;
  s.exchange = args;
  return peer_->Record(std::move(s));
}

absl::Status FakeConnection::DeleteExchange(uint16_t channel,
                                            absl::string_view exchange,
                                            bool if_unused) {
  Sent s = Method(Sent::Kind::kExchangeDelete, channel);
  s.name = std::string(exchange);
  s.if_unused = if_unused;
  return peer_->Record(std::move(s));
}

// --- FakeBroker ---

FakeBroker::~FakeBroker() {
  amqpgw::MutexLock lock(&state_->mu);
  state_->shutting_down = true;
  state_->changed.SignalAll();
}

ConnectionFactory FakeBroker::factory() {
  std::shared_ptr<State> state = state_;
  return [state](const BrokerAddress& address, const OpenOptions& options) {
    return Open(state, address, options);
  };
}

void FakeBroker::set_peer_options(FakePeer::Options options) {
  amqpgw::MutexLock lock(&state_->mu);
  state_->peer_options = std::move(options);
}

void FakeBroker::set_on_open(std::function<void(FakePeer&)> on_open) {
  amqpgw::MutexLock lock(&state_->mu);
  state_->on_open = std::move(on_open);
}

void FakeBroker::FailOpens(const std::string& host_port, absl::Status status,
                           int count) {
  amqpgw::MutexLock lock(&state_->mu);
  state_->failures[host_port] = {std::move(status), count};
}

void FakeBroker::ClearFailures(const std::string& host_port) {
  amqpgw::MutexLock lock(&state_->mu);
  state_->failures.erase(host_port);
}

void FakeBroker::BlockOpens(const std::string& host_port) {
  amqpgw::MutexLock lock(&state_->mu);
  state_->blocked.insert(host_port);
}

void FakeBroker::Unblock(const std::string& host_port) {
  amqpgw::MutexLock lock(&state_->mu);
  state_->blocked.erase(host_port);
  state_->changed.SignalAll();
}

std::vector<std::string> FakeBroker::attempts() const {
  amqpgw::MutexLock lock(&state_->mu);
  return state_->attempts;
}

bool FakeBroker::WaitForAttempts(size_t n, absl::Duration timeout) {
  State& s = *state_;
  amqpgw::MutexLock lock(&s.mu);
  return WaitOn(
      &s.mu, &s.changed, absl::Now() + timeout,
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return s.attempts.size() >= n; });
}

bool FakeBroker::WaitForBlocked(size_t n, absl::Duration timeout) {
  State& s = *state_;
  amqpgw::MutexLock lock(&s.mu);
  return WaitOn(
      &s.mu, &s.changed, absl::Now() + timeout,
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return s.blocked_now >= n; });
}

std::vector<std::shared_ptr<FakePeer>> FakeBroker::peers() const {
  amqpgw::MutexLock lock(&state_->mu);
  return state_->peers;
}

std::shared_ptr<FakePeer> FakeBroker::WaitForPeer(
    const std::string& name_suffix, size_t n, absl::Duration timeout) {
  State& s = *state_;
  amqpgw::MutexLock lock(&s.mu);
  std::shared_ptr<FakePeer> found;
  WaitOn(&s.mu, &s.changed, absl::Now() + timeout,
         [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
           size_t seen = 0;
           for (const auto& p : s.peers) {
             if (absl::EndsWith(p->connection_name(), name_suffix) &&
                 seen++ == n) {
               found = p;
               return true;
             }
           }
           return false;
         });
  return found;
}

absl::StatusOr<std::unique_ptr<Connection>> FakeBroker::Open(
    const std::shared_ptr<State>& state, const BrokerAddress& address,
    const OpenOptions& options) {
  State& s = *state;
  const std::string host_port = address.HostPort();
  amqpgw::MutexLock lock(&s.mu);
  s.attempts.push_back(host_port);
  s.changed.SignalAll();
  if (s.blocked.count(host_port) > 0) {
    ++s.blocked_now;
    s.changed.SignalAll();
    bool released =
        WaitOn(&s.mu, &s.changed, absl::Now() + options.connect_timeout,
               [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                 return s.blocked.count(host_port) == 0 || s.shutting_down;
               });
    --s.blocked_now;
    s.changed.SignalAll();
    if (!released || s.shutting_down) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ",
                                                 host_port,
                                                 ": a socket error occurred "
                                                 "(timed out; fake)"));
    }
  }
  auto failure = s.failures.find(host_port);
  if (failure != s.failures.end() && failure->second.second != 0) {
    absl::Status status = failure->second.first;
    if (failure->second.second > 0) --failure->second.second;
    return status;
  }
  auto peer = std::make_shared<FakePeer>(address, options.connection_name,
                                         s.peer_options);
  if (s.on_open) s.on_open(*peer);
  s.peers.push_back(peer);
  s.changed.SignalAll();
  return std::unique_ptr<Connection>(
      std::make_unique<FakeConnection>(std::move(peer)));
}

}  // namespace amqpgw::amqp::testing
