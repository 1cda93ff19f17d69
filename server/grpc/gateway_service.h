// amqpgw.v1.Gateway over the callback API: thin handlers that validate,
// translate and hand the work to the core::Session. No handler blocks: each
// returns a reactor that the session's threads finish when the broker
// answers.
//
// Every handler is named as its RPC in gateway.proto and first asks the
// Authorizer (when tokens are configured) with that name (rpcs.h has each
// RPC's role); the publishing handlers carry the W3C trace context into the
// messages (see tracing.h). DeclareExchange with a custom_type that is not
// built in waits for core::ExchangeTypes to say the broker has it.
#ifndef AMQPGW_SERVER_GRPC_GATEWAY_SERVICE_H_
#define AMQPGW_SERVER_GRPC_GATEWAY_SERVICE_H_

#include <functional>
#include <string>

#include "amqpgw/v1/gateway.grpc.pb.h"
#include "server/core/exchange_types.h"
#include "server/core/session.h"
#include "server/grpc/ack_router.h"
#include "server/grpc/auth.h"
#include "server/grpc/convert.h"
#include "server/management/backend.h"
#include "server/trace/span.h"

namespace amqpgw::grpc_api {

class GatewayService final : public v1::Gateway::CallbackService {
 public:
  struct Options {
    Limits limits;
    std::string version = AMQPGW_VERSION;
    // Null: no caller authentication. Must outlive the service.
    const Authorizer* authorizer = nullptr;
    // Null: no spans are recorded (trace context is still propagated).
    trace::SpanExporter* spans = nullptr;
    // Checks DeclareExchange's custom_type. Null: only built-in exchange
    // types are accepted. Must outlive the service.
    core::ExchangeTypes* exchange_types = nullptr;
    // The gateway's own rates over the last `window` (GetStatus); called on
    // gRPC's threads, must not block. Empty: GetStatus reports none.
    std::function<RecentRates(absl::Duration window)> rates;
    // The broker's management API (listing RPCs, GetStatus's `listing`).
    // Null: listing RPCs answer UNIMPLEMENTED. Must outlive the service.
    management::Backend* management = nullptr;
    // Forwards Acks for streams other instances hold. Null: an Ack for
    // another instance's stream fails FAILED_PRECONDITION. Must outlive the
    // service.
    AckRouter* ack_router = nullptr;
  };

  // `session` must outlive the service and every call it serves.
  GatewayService(core::Session* session, Options options);

  ::grpc::ServerUnaryReactor* Connect(::grpc::CallbackServerContext* ctx,
                                      const v1::ConnectRequest* request,
                                      v1::ConnectResponse* response) override;
  ::grpc::ServerUnaryReactor* Disconnect(
      ::grpc::CallbackServerContext* ctx, const v1::DisconnectRequest* request,
      v1::DisconnectResponse* response) override;
  ::grpc::ServerUnaryReactor* GetStatus(
      ::grpc::CallbackServerContext* ctx, const v1::GetStatusRequest* request,
      v1::GetStatusResponse* response) override;
  ::grpc::ServerUnaryReactor* DeclareQueue(
      ::grpc::CallbackServerContext* ctx,
      const v1::DeclareQueueRequest* request,
      v1::DeclareQueueResponse* response) override;
  ::grpc::ServerUnaryReactor* InspectQueue(
      ::grpc::CallbackServerContext* ctx,
      const v1::InspectQueueRequest* request,
      v1::InspectQueueResponse* response) override;
  ::grpc::ServerUnaryReactor* DeleteQueue(
      ::grpc::CallbackServerContext* ctx, const v1::DeleteQueueRequest* request,
      v1::DeleteQueueResponse* response) override;
  ::grpc::ServerUnaryReactor* PurgeQueue(
      ::grpc::CallbackServerContext* ctx, const v1::PurgeQueueRequest* request,
      v1::PurgeQueueResponse* response) override;
  ::grpc::ServerUnaryReactor* GetMessages(
      ::grpc::CallbackServerContext* ctx, const v1::GetMessagesRequest* request,
      v1::GetMessagesResponse* response) override;
  ::grpc::ServerUnaryReactor* DeclareExchange(
      ::grpc::CallbackServerContext* ctx,
      const v1::DeclareExchangeRequest* request,
      v1::DeclareExchangeResponse* response) override;
  ::grpc::ServerUnaryReactor* DeleteExchange(
      ::grpc::CallbackServerContext* ctx,
      const v1::DeleteExchangeRequest* request,
      v1::DeleteExchangeResponse* response) override;
  ::grpc::ServerUnaryReactor* BindQueue(
      ::grpc::CallbackServerContext* ctx, const v1::BindQueueRequest* request,
      v1::BindQueueResponse* response) override;
  ::grpc::ServerUnaryReactor* UnbindQueue(
      ::grpc::CallbackServerContext* ctx, const v1::UnbindQueueRequest* request,
      v1::UnbindQueueResponse* response) override;
  ::grpc::ServerUnaryReactor* Publish(::grpc::CallbackServerContext* ctx,
                                      const v1::PublishRequest* request,
                                      v1::PublishResponse* response) override;
  ::grpc::ServerUnaryReactor* PublishBatch(
      ::grpc::CallbackServerContext* ctx,
      const v1::PublishBatchRequest* request,
      v1::PublishBatchResponse* response) override;
  ::grpc::ServerBidiReactor<v1::PublishStreamRequest,
                            v1::PublishStreamResponse>*
  PublishStream(::grpc::CallbackServerContext* ctx) override;
  ::grpc::ServerWriteReactor<v1::StreamMessagesResponse>* StreamMessages(
      ::grpc::CallbackServerContext* ctx,
      const v1::StreamMessagesRequest* request) override;
  ::grpc::ServerUnaryReactor* Ack(::grpc::CallbackServerContext* ctx,
                                  const v1::AckRequest* request,
                                  v1::AckResponse* response) override;
  ::grpc::ServerUnaryReactor* ListQueues(
      ::grpc::CallbackServerContext* ctx, const v1::ListQueuesRequest* request,
      v1::ListQueuesResponse* response) override;
  ::grpc::ServerUnaryReactor* ListExchanges(
      ::grpc::CallbackServerContext* ctx,
      const v1::ListExchangesRequest* request,
      v1::ListExchangesResponse* response) override;
  ::grpc::ServerUnaryReactor* ListBindings(
      ::grpc::CallbackServerContext* ctx,
      const v1::ListBindingsRequest* request,
      v1::ListBindingsResponse* response) override;
  ::grpc::ServerUnaryReactor* ListConsumers(
      ::grpc::CallbackServerContext* ctx,
      const v1::ListConsumersRequest* request,
      v1::ListConsumersResponse* response) override;
  ::grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>*
  Subscribe(::grpc::CallbackServerContext* ctx) override;

 private:
  // OK when no tokens are configured or the call's token allows the RPC
  // named `rpc` (the handler's __func__).
  absl::Status Authorize(const ::grpc::CallbackServerContext* ctx,
                         absl::string_view rpc) const;
  // The management API client for a listing call, or why there is none.
  absl::StatusOr<std::shared_ptr<management::ManagementClient>>
  ManagementClient() const;
  // A paged listing RPC named `rpc`: authorizes, validates the request's
  // filter and page, hands the query to `list` (a ManagementClient method)
  // and finishes from its page, `add` converting each item into `response`.
  template <typename Item, typename Request, typename Response, typename Add>
  ::grpc::ServerUnaryReactor* ListPage(
      ::grpc::CallbackServerContext* ctx, absl::string_view rpc,
      const Request& request, Response* response,
      void (management::ManagementClient::*list)(
          management::ListQuery,
          management::ManagementClient::Done<management::Page<Item>>),
      Add add);

  core::Session* const session_;
  const Options options_;
};

// The call's deadline as absl::Time (InfiniteFuture when none).
absl::Time CallDeadline(const ::grpc::CallbackServerContext* ctx);

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_GATEWAY_SERVICE_H_
