#include "server/grpc/gateway_service.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/amqp/broker_rules.h"
#include "server/grpc/listing.h"
#include "server/grpc/publish_stream_reactor.h"
#include "server/grpc/status.h"
#include "server/grpc/stream_reactor.h"
#include "server/grpc/subscribe_reactor.h"
#include "server/grpc/tracing.h"

namespace amqpgw::grpc_api {

using ::grpc::CallbackServerContext;
using ::grpc::ServerUnaryReactor;

absl::Time CallDeadline(const CallbackServerContext* ctx) {
  auto deadline = ctx->deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() -
                      std::chrono::hours(24 * 365 * 100)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

namespace {

// After the management API failed, how long InspectQueue answers without
// asking it again.
constexpr absl::Duration kSkipUnavailableManagement = absl::Seconds(10);

// Hands `batch` to the session; `reactor` (the call's default reactor) is
// finished by the batch's done callback, or here if the session refuses it.
// A cancelled call's messages that were not sent yet are not published: the
// publisher asks the context before sending each one (while the broker
// blocks publishers they wait, counted in --max_pending_bytes, until it
// unblocks or the deadline passes). (A reactor of our own
// with OnCancel would cost every call a hop through gRPC's executor thread
// for OnDone: only gRPC's default reactor has its OnDone run inline.)
ServerUnaryReactor* StartPublish(CallbackServerContext* ctx,
                                 ServerUnaryReactor* reactor,
                                 core::Session& session,
                                 std::shared_ptr<core::PublishBatch> batch) {
  batch->set_cancelled([ctx] { return ctx->IsCancelled(); });
  absl::Status s = session.Publish(std::move(batch));
  if (!s.ok()) reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

ServerUnaryReactor* Fail(CallbackServerContext* ctx, const absl::Status& s) {
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// Completion callbacks for the session: they finish a unary call with the
// broker's answer (on the thread that owns the connection).
auto FinishCall(ServerUnaryReactor* reactor) {
  return [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); };
}

template <typename Response>
auto FinishWithQueueInfo(ServerUnaryReactor* reactor, Response* response) {
  return [reactor, response](absl::StatusOr<core::QueueInfo> r) {
    if (r.ok()) {
      response->set_name(r->name);
      response->set_message_count(r->message_count);
      response->set_consumer_count(r->consumer_count);
    }
    reactor->Finish(ToGrpcStatus(r.status()));
  };
}

template <typename Response>
auto FinishWithMessageCount(ServerUnaryReactor* reactor, Response* response) {
  return [reactor, response](absl::StatusOr<uint32_t> r) {
    if (r.ok()) response->set_message_count(*r);
    reactor->Finish(ToGrpcStatus(r.status()));
  };
}

}  // namespace

GatewayService::GatewayService(core::Session* session, Options options)
    : session_(session), options_(std::move(options)) {}

absl::Status GatewayService::Authorize(const CallbackServerContext* ctx,
                                       absl::string_view rpc_name) const {
  if (options_.authorizer == nullptr) return absl::OkStatus();
  const Rpc* rpc = FindGatewayRpc(rpc_name);
  if (rpc == nullptr) {
    // A handler not named as its RPC: refuse rather than guess its role.
    return absl::InternalError(
        absl::StrCat("no role known for ", rpc_name, " (a gateway bug)"));
  }
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  std::optional<absl::string_view> value;
  if (it != md.end()) {
    value = absl::string_view(it->second.data(), it->second.size());
  }
  return options_.authorizer->Check(value, *rpc, ctx->peer());
}

ServerUnaryReactor* GatewayService::Connect(CallbackServerContext* ctx,
                                            const v1::ConnectRequest* request,
                                            v1::ConnectResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::Time deadline = CallDeadline(ctx);
  if (request->has_wait()) {
    const auto& w = request->wait();
    if (w.seconds() < 0 || w.nanos() < 0) {
      return Fail(ctx,
                  absl::InvalidArgumentError("wait: must not be negative"));
    }
    deadline = std::min(deadline, absl::Now() + absl::Seconds(w.seconds()) +
                                      absl::Nanoseconds(w.nanos()));
  } else {
    deadline = std::min(deadline, absl::Now() + absl::Seconds(30));
  }
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  session_->Connect(deadline, [reactor, response](core::ConnectionInfo info) {
    ToProtoConnectionInfo(info, response->mutable_connection());
    reactor->Finish(::grpc::Status::OK);
  });
  return reactor;
}

ServerUnaryReactor* GatewayService::Disconnect(
    CallbackServerContext* ctx, const v1::DisconnectRequest* request,
    v1::DisconnectResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  session_->Disconnect([reactor, response](core::ConnectionInfo info) {
    ToProtoConnectionInfo(info, response->mutable_connection());
    reactor->Finish(::grpc::Status::OK);
  });
  return reactor;
}

ServerUnaryReactor* GatewayService::GetStatus(
    CallbackServerContext* ctx, const v1::GetStatusRequest* request,
    v1::GetStatusResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  ToProtoConnectionInfo(session_->Info(), response->mutable_connection());
  ToProtoCounters(session_->Counters(), response->mutable_counters());
  response->set_version(options_.version);
  response->set_instance_id(session_->instance_id());
  if (options_.management != nullptr) {
    ToProtoListingStatus(options_.management->status(),
                         response->mutable_listing());
  }
  if (options_.rates) {
    ToProtoRates(options_.rates(absl::Seconds(10)),
                 response->mutable_rates_10s());
    ToProtoRates(options_.rates(absl::Minutes(1)),
                 response->mutable_rates_1m());
  }
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

ServerUnaryReactor* GatewayService::DeclareQueue(
    CallbackServerContext* ctx, const v1::DeclareQueueRequest* request,
    v1::DeclareQueueResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::StatusOr<amqp::QueueDeclareArgs> args = ToQueueDeclareArgs(*request);
  if (!args.ok()) return Fail(ctx, args.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  session_->topology().DeclareQueue(*std::move(args),
                                    session_->Deadline(CallDeadline(ctx)),
                                    FinishWithQueueInfo(reactor, response));
  return reactor;
}

ServerUnaryReactor* GatewayService::InspectQueue(
    CallbackServerContext* ctx, const v1::InspectQueueRequest* request,
    v1::InspectQueueResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::Status s = ValidateName("name", request->name(), false);
  if (!s.ok()) return Fail(ctx, s);
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const absl::Time deadline = session_->Deadline(CallDeadline(ctx));
  std::shared_ptr<management::ManagementClient> client =
      options_.management == nullptr ? nullptr : options_.management->client();
  std::string unavailable;
  if (client == nullptr) {
    unavailable =
        options_.management == nullptr
            ? "the management API is not configured"
            : std::string(options_.management->NotYetError().message());
  } else if (management::Backend::Status st = options_.management->status();
             st.state == management::Backend::Status::State::kUnavailable &&
             absl::Now() - st.checked < kSkipUnavailableManagement) {
    // It failed moments ago: the AMQP counts alone, without waiting for it
    // (up to its timeout) on every call.
    unavailable = st.detail;
    client = nullptr;
  }
  if (client == nullptr) {
    response->set_details_unavailable(SanitizeUtf8(unavailable));
    session_->topology().InspectQueue(request->name(), deadline,
                                      FinishWithQueueInfo(reactor, response));
    return reactor;
  }
  // The passive declare and the management API at once; the call ends when
  // both have answered, and the response is written by the last one.
  struct Join {
    std::atomic<int> left{2};
    absl::StatusOr<core::QueueInfo> amqp = absl::UnknownError("");
    absl::StatusOr<management::Queue> details = absl::UnknownError("");
  };
  auto join = std::make_shared<Join>();
  auto finish_if_last = [reactor, response, join] {
    if (join->left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (!join->amqp.ok()) {
      reactor->Finish(ToGrpcStatus(join->amqp.status()));
      return;
    }
    response->set_name(join->amqp->name);
    response->set_message_count(join->amqp->message_count);
    response->set_consumer_count(join->amqp->consumer_count);
    if (join->details.ok()) {
      ToProtoQueue(*join->details, response->mutable_details());
    } else {
      response->set_details_unavailable(
          SanitizeUtf8(join->details.status().message()));
    }
    reactor->Finish(::grpc::Status::OK);
  };
  session_->topology().InspectQueue(
      request->name(), deadline,
      [join, finish_if_last](absl::StatusOr<core::QueueInfo> r) {
        join->amqp = std::move(r);
        finish_if_last();
      });
  client->GetQueue(request->name(),
                   [join, finish_if_last](absl::StatusOr<management::Queue> q) {
                     join->details = std::move(q);
                     finish_if_last();
                   });
  return reactor;
}

ServerUnaryReactor* GatewayService::DeleteQueue(
    CallbackServerContext* ctx, const v1::DeleteQueueRequest* request,
    v1::DeleteQueueResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::Status s = ValidateName("name", request->name(), false);
  if (!s.ok()) return Fail(ctx, s);
  // The broker answers delete-ok whether or not the queue existed: ask
  // first (passive declare on the session's own channel), then delete.
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const absl::Time deadline = session_->Deadline(CallDeadline(ctx));
  session_->topology().InspectQueue(
      request->name(), deadline,
      [this, reactor, request, response,
       deadline](absl::StatusOr<core::QueueInfo> r) {
        if (!r.ok() && !absl::IsNotFound(r.status())) {
          return reactor->Finish(ToGrpcStatus(r.status()));
        }
        response->set_existed(r.ok());
        session_->topology().DeleteQueue(
            request->name(), request->if_unused(), request->if_empty(),
            deadline, FinishWithMessageCount(reactor, response));
      });
  return reactor;
}

ServerUnaryReactor* GatewayService::PurgeQueue(
    CallbackServerContext* ctx, const v1::PurgeQueueRequest* request,
    v1::PurgeQueueResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::Status s = ValidateName("name", request->name(), false);
  if (!s.ok()) return Fail(ctx, s);
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  session_->topology().PurgeQueue(request->name(),
                                  session_->Deadline(CallDeadline(ctx)),
                                  FinishWithMessageCount(reactor, response));
  return reactor;
}

ServerUnaryReactor* GatewayService::GetMessages(
    CallbackServerContext* ctx, const v1::GetMessagesRequest* request,
    v1::GetMessagesResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::StatusOr<core::GetRequest> get = ToGetRequest(*request);
  if (!get.ok()) return Fail(ctx, get.status());
  get->deadline = session_->Deadline(CallDeadline(ctx));
  const bool requeue = !get->ack;
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  session_->GetMessages(
      *std::move(get),
      [reactor, response, requeue](absl::StatusOr<core::GetResult> r) {
        if (r.ok()) {
          for (amqp::Delivery& d : r->messages) {
            ToProtoDelivery(std::move(d), response->add_messages());
          }
          response->set_requeued(requeue && !r->messages.empty());
          response->set_message_count(r->message_count);
        }
        reactor->Finish(ToGrpcStatus(r.status()));
      });
  return reactor;
}

ServerUnaryReactor* GatewayService::DeclareExchange(
    CallbackServerContext* ctx, const v1::DeclareExchangeRequest* request,
    v1::DeclareExchangeResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::StatusOr<amqp::ExchangeDeclareArgs> args =
      ToExchangeDeclareArgs(*request);
  if (!args.ok()) return Fail(ctx, args.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const absl::Time deadline = session_->Deadline(CallDeadline(ctx));
  if (amqp::IsBuiltinExchangeType(args->type)) {
    session_->topology().DeclareExchange(*std::move(args), deadline,
                                         FinishCall(reactor));
    return reactor;
  }
  if (options_.exchange_types == nullptr) {
    reactor->Finish(ToGrpcStatus(absl::FailedPreconditionError(
        "custom_type: this gateway cannot check plugin exchange types")));
    return reactor;
  }
  // A type the broker does not have would close the control connection:
  // declare only once a connection of its own said the broker has it.
  std::string type = args->type;
  options_.exchange_types->Check(
      type, [session = session_, args = *std::move(args), deadline,
             reactor](absl::Status s) mutable {
        if (!s.ok()) {
          reactor->Finish(ToGrpcStatus(absl::Status(
              s.code(), absl::StrCat("custom_type: ", s.message()))));
          return;
        }
        session->topology().DeclareExchange(std::move(args), deadline,
                                            FinishCall(reactor));
      });
  return reactor;
}

ServerUnaryReactor* GatewayService::DeleteExchange(
    CallbackServerContext* ctx, const v1::DeleteExchangeRequest* request,
    v1::DeleteExchangeResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::Status s = ValidateName("name", request->name(), false);
  if (!s.ok()) return Fail(ctx, s);
  // As DeleteQueue: a passive declare says whether it existed.
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const absl::Time deadline = session_->Deadline(CallDeadline(ctx));
  amqp::ExchangeDeclareArgs check;
  check.name = request->name();
  check.passive = true;
  session_->topology().DeclareExchange(
      std::move(check), deadline,
      [this, reactor, request, response, deadline](absl::Status s) {
        if (!s.ok() && !absl::IsNotFound(s)) {
          return reactor->Finish(ToGrpcStatus(s));
        }
        response->set_existed(s.ok());
        session_->topology().DeleteExchange(request->name(),
                                            request->if_unused(), deadline,
                                            FinishCall(reactor));
      });
  return reactor;
}

ServerUnaryReactor* GatewayService::BindQueue(
    CallbackServerContext* ctx, const v1::BindQueueRequest* request,
    v1::BindQueueResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::StatusOr<amqp::BindArgs> args = ToBindArgs(*request);
  if (!args.ok()) return Fail(ctx, args.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  session_->topology().BindQueue(*std::move(args),
                                 session_->Deadline(CallDeadline(ctx)),
                                 FinishCall(reactor));
  return reactor;
}

ServerUnaryReactor* GatewayService::UnbindQueue(
    CallbackServerContext* ctx, const v1::UnbindQueueRequest* request,
    v1::UnbindQueueResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::StatusOr<amqp::BindArgs> args = ToBindArgs(*request);
  if (!args.ok()) return Fail(ctx, args.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  session_->topology().UnbindQueue(*std::move(args),
                                   session_->Deadline(CallDeadline(ctx)),
                                   FinishCall(reactor));
  return reactor;
}

ServerUnaryReactor* GatewayService::Publish(CallbackServerContext* ctx,
                                            const v1::PublishRequest* request,
                                            v1::PublishResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::StatusOr<amqp::OutgoingMessage> m =
      ToOutgoingMessage(*request, "", options_.limits);
  if (!m.ok()) return Fail(ctx, m.status());
  PublishTracing tracing(TraceContextFromMetadata(*ctx), options_.spans,
                         "Publish");
  tracing.Inject(0, *m);
  std::unique_ptr<PublishTracing> spans;
  if (tracing.recording()) {
    spans = std::make_unique<PublishTracing>(std::move(tracing));
  }
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::string id = m->properties.message_id.value_or(std::string());
  std::vector<amqp::OutgoingMessage> messages;
  messages.push_back(*std::move(m));
  auto batch = std::make_shared<core::PublishBatch>(
      std::move(messages), session_->Deadline(CallDeadline(ctx)),
      [reactor, response, id = std::move(id),
       spans = std::move(spans)](core::PublishBatch& b) {
        if (spans != nullptr) spans->Finish(b);
        const core::PublishBatch::Result& r = b.result(0);
        if (r.status.ok()) {
          response->set_message_id(id);
          SetTimestamp(r.confirmed_at, response->mutable_publish_time());
        }
        reactor->Finish(ToGrpcStatus(r.status));
      });
  return StartPublish(ctx, reactor, *session_, std::move(batch));
}

ServerUnaryReactor* GatewayService::PublishBatch(
    CallbackServerContext* ctx, const v1::PublishBatchRequest* request,
    v1::PublishBatchResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  const int n = request->messages_size();
  if (n == 0) {
    return Fail(ctx, absl::InvalidArgumentError("messages: empty batch"));
  }
  if (static_cast<size_t>(n) > options_.limits.max_batch_messages) {
    return Fail(ctx, absl::InvalidArgumentError(absl::StrCat(
                         "messages: ", n, " messages; at most ",
                         options_.limits.max_batch_messages, " per batch")));
  }
  std::vector<amqp::OutgoingMessage> messages;
  messages.reserve(n);
  auto ids = std::make_shared<std::vector<std::string>>();
  ids->reserve(n);
  PublishTracing tracing(TraceContextFromMetadata(*ctx), options_.spans,
                         "PublishBatch");
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<amqp::OutgoingMessage> m =
        ToOutgoingMessage(request->messages(i),
                          absl::StrCat("messages[", i, "]"), options_.limits);
    if (!m.ok()) return Fail(ctx, m.status());
    tracing.Inject(i, *m);
    ids->push_back(m->properties.message_id.value_or(std::string()));
    messages.push_back(*std::move(m));
  }
  std::unique_ptr<PublishTracing> spans;
  if (tracing.recording()) {
    spans = std::make_unique<PublishTracing>(std::move(tracing));
  }
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto batch = std::make_shared<core::PublishBatch>(
      std::move(messages), session_->Deadline(CallDeadline(ctx)),
      [reactor, response, ids,
       spans = std::move(spans)](core::PublishBatch& b) {
        if (spans != nullptr) spans->Finish(b);
        uint32_t ok = 0;
        for (size_t i = 0; i < b.size(); ++i) {
          ToProtoPublishResult(b.result(i).status, b.result(i).confirmed_at,
                               (*ids)[i], response->add_results());
          if (b.result(i).status.ok()) ++ok;
        }
        response->set_ok_count(ok);
        reactor->Finish(::grpc::Status::OK);
      });
  return StartPublish(ctx, reactor, *session_, std::move(batch));
}

::grpc::ServerBidiReactor<v1::PublishStreamRequest, v1::PublishStreamResponse>*
GatewayService::PublishStream(CallbackServerContext* ctx) {
  auto* reactor =
      new PublishStreamReactor(ctx, session_, options_.limits, options_.spans);
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    reactor->FinishNow(ToGrpcStatus(s));
    return reactor;
  }
  reactor->Start();
  return reactor;
}

::grpc::ServerWriteReactor<v1::StreamMessagesResponse>*
GatewayService::StreamMessages(CallbackServerContext* ctx,
                               const v1::StreamMessagesRequest* request) {
  absl::StatusOr<core::SubscribeOptions> options = ToSubscribeOptions(*request);
  auto* reactor = new StreamReactor(
      options.ok() ? options->ack_mode : core::AckMode::kAuto, request->queue(),
      options.ok() ? options->prefetch : 0,
      options.ok() ? request->max_batch() : 0, options_.spans);
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    reactor->FinishNow(ToGrpcStatus(s));
    return reactor;
  }
  if (!options.ok()) {
    reactor->FinishNow(ToGrpcStatus(options.status()));
    return reactor;
  }
  options->subscribe_deadline = session_->Deadline(CallDeadline(ctx));
  absl::StatusOr<std::shared_ptr<core::Subscription>> sub =
      session_->Subscribe(*std::move(options), reactor);
  if (!sub.ok()) {
    reactor->FinishNow(ToGrpcStatus(sub.status()));
    return reactor;
  }
  reactor->Attach(*std::move(sub));
  return reactor;
}

ServerUnaryReactor* GatewayService::Ack(CallbackServerContext* ctx,
                                        const v1::AckRequest* request,
                                        v1::AckResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  if (request->subscription_id().empty()) {
    return Fail(ctx, absl::InvalidArgumentError(
                         "subscription_id: must not be empty (it comes in the "
                         "stream's `subscribed` event)"));
  }
  if (request->delivery_ids_size() == 0 ||
      request->delivery_ids_size() > 65535) {
    return Fail(ctx, absl::InvalidArgumentError(
                         absl::StrCat("delivery_ids: give 1 to 65535 ids, got ",
                                      request->delivery_ids_size())));
  }
  absl::StatusOr<core::AckCommand> action = ToAckCommand(*request);
  if (!action.ok()) return Fail(ctx, action.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (AckRouter* router = options_.ack_router; router != nullptr) {
    const auto& md = ctx->client_metadata();
    auto it = md.find(AckRouter::kForwardedBy);
    absl::string_view forwarded_by;
    if (it != md.end()) {
      forwarded_by = absl::string_view(it->second.data(), it->second.size());
    }
    absl::StatusOr<AckRouter::Route> route =
        router->Resolve(request->subscription_id(), forwarded_by);
    if (!route.ok()) return Fail(ctx, route.status());
    if (!route->holder_address.empty()) {
      router->Forward(route->holder_address, *ctx, *request,
                      [reactor, response](const ::grpc::Status& status,
                                          const v1::AckResponse& answer) {
                        *response = answer;
                        reactor->Finish(status);
                      });
      return reactor;
    }
  }
  std::vector<uint64_t> ids(request->delivery_ids().begin(),
                            request->delivery_ids().end());
  session_->Ack(request->subscription_id(), std::move(ids), *std::move(action),
                [reactor, response](absl::StatusOr<core::AckResult> r) {
                  if (r.ok() && !r->failure.ok()) {
                    // RETRY copies not confirmed: those ids stay unacked.
                    reactor->Finish(ToGrpcStatus(r->failure));
                    return;
                  }
                  if (r.ok()) {
                    response->set_applied_count(r->applied);
                    for (uint64_t id : r->stale_ids)
                      response->add_stale_ids(id);
                  }
                  reactor->Finish(ToGrpcStatus(r.status()));
                });
  return reactor;
}

absl::StatusOr<std::shared_ptr<management::ManagementClient>>
GatewayService::ManagementClient() const {
  if (options_.management == nullptr) {
    return absl::UnimplementedError(
        "this gateway was built without a management API backend");
  }
  std::shared_ptr<management::ManagementClient> client =
      options_.management->client();
  if (client == nullptr) return options_.management->NotYetError();
  return client;
}

// The listing RPCs: validate, hand the query to the management API client
// (its threads do the HTTP), and finish from its answer.

namespace {

// Finishes a paged listing call from the management API's page: `add`
// converts each item into `response`, then the page's token and counts.
template <typename Item, typename Response, typename Add>
auto FinishPage(ServerUnaryReactor* reactor, Response* response, Add add) {
  return [reactor, response,
          add = std::move(add)](absl::StatusOr<management::Page<Item>> r) {
    if (r.ok()) {
      for (const Item& item : r->items) add(item);
      response->set_next_page_token(NextPageToken(*r));
      response->set_filtered_count(r->filtered_count);
      response->set_total_count(r->total_count);
    }
    reactor->Finish(ToGrpcStatus(r.status()));
  };
}

}  // namespace

template <typename Item, typename Request, typename Response, typename Add>
ServerUnaryReactor* GatewayService::ListPage(
    CallbackServerContext* ctx, absl::string_view rpc, const Request& request,
    Response* response,
    void (management::ManagementClient::*list)(
        management::ListQuery,
        management::ManagementClient::Done<management::Page<Item>>),
    Add add) {
  if (absl::Status s = Authorize(ctx, rpc); !s.ok()) return Fail(ctx, s);
  absl::StatusOr<management::ListQuery> query =
      ToListQuery(request.has_filter() ? &request.filter() : nullptr,
                  request.page_size(), request.page_token());
  if (!query.ok()) return Fail(ctx, query.status());
  auto client = ManagementClient();
  if (!client.ok()) return Fail(ctx, client.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  ((**client).*list)(*std::move(query),
                     FinishPage<Item>(reactor, response, std::move(add)));
  return reactor;
}

ServerUnaryReactor* GatewayService::ListQueues(
    CallbackServerContext* ctx, const v1::ListQueuesRequest* request,
    v1::ListQueuesResponse* response) {
  return ListPage<management::Queue>(ctx, __func__, *request, response,
                                     &management::ManagementClient::ListQueues,
                                     [response](const management::Queue& q) {
                                       ToProtoQueue(q, response->add_queues());
                                     });
}

ServerUnaryReactor* GatewayService::ListExchanges(
    CallbackServerContext* ctx, const v1::ListExchangesRequest* request,
    v1::ListExchangesResponse* response) {
  return ListPage<management::Exchange>(
      ctx, __func__, *request, response,
      &management::ManagementClient::ListExchanges,
      [response](const management::Exchange& e) {
        ToProtoExchange(e, response->add_exchanges());
      });
}

ServerUnaryReactor* GatewayService::ListBindings(
    CallbackServerContext* ctx, const v1::ListBindingsRequest* request,
    v1::ListBindingsResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::StatusOr<management::BindingFilter> filter = ToBindingFilter(*request);
  if (!filter.ok()) return Fail(ctx, filter.status());
  auto client = ManagementClient();
  if (!client.ok()) return Fail(ctx, client.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  (*client)->ListBindings(
      *std::move(filter),
      [reactor, response](absl::StatusOr<std::vector<management::Binding>> r) {
        if (r.ok()) {
          for (const management::Binding& b : *r) {
            ToProtoBinding(b, response->add_bindings());
          }
        }
        reactor->Finish(ToGrpcStatus(r.status()));
      });
  return reactor;
}

ServerUnaryReactor* GatewayService::ListConsumers(
    CallbackServerContext* ctx, const v1::ListConsumersRequest* request,
    v1::ListConsumersResponse* response) {
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    return Fail(ctx, s);
  }
  absl::Status s = ValidateName("queue", request->queue(), false);
  if (!s.ok()) return Fail(ctx, s);
  auto client = ManagementClient();
  if (!client.ok()) return Fail(ctx, client.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  (*client)->ListConsumers(
      request->queue(),
      [reactor, response](absl::StatusOr<std::vector<management::Consumer>> r) {
        if (r.ok()) {
          for (const management::Consumer& c : *r) {
            ToProtoConsumer(c, response->add_consumers());
          }
        }
        reactor->Finish(ToGrpcStatus(r.status()));
      });
  return reactor;
}

::grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>*
GatewayService::Subscribe(CallbackServerContext* ctx) {
  auto* reactor = new SubscribeReactor(
      session_, session_->Deadline(CallDeadline(ctx)), options_.spans);
  if (absl::Status s = Authorize(ctx, __func__); !s.ok()) {
    reactor->FinishNow(ToGrpcStatus(s));
    return reactor;
  }
  reactor->Start();
  return reactor;
}

}  // namespace amqpgw::grpc_api
