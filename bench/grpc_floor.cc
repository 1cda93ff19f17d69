// amqpgw-grpc-floor: a gRPC server that speaks amqpgw.v1.Gateway but does no
// work, to measure what gRPC itself costs per call on a machine, with the
// callback API amqpgwd uses and with the async API.
//
// Connect answers READY; DeclareQueue, PurgeQueue, Publish and GetStatus
// answer OK at once; every other method is UNIMPLEMENTED. Point
// amqpgw-bench's publish and status-sync modes at it (bench/grpc_floor.sh
// does) and compare its CPU per call with amqpgwd's.
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "amqpgw/v1/gateway.grpc.pb.h"
#include "bench/common.h"
#include "server/core/event_loop.h"

namespace amqpgw::bench {
namespace {

namespace v1 = ::amqpgw::v1;

constexpr char kUsage[] =
    R"(amqpgw-grpc-floor MODE [--listen HOST:PORT] [--delay_us D [--tick_us T]]:
a Gateway that does nothing.

Modes:
  callback      CallbackService, as amqpgwd (gRPC runs the reactions on its
                own callback threads)
  async         AsyncService driven by one completion-queue thread, and no
                other service
  async-health  async, plus gRPC's default health service (a callback
                service: its threads then poll the connections too)
  callback-hop  callback, but Publish and GetStatus are finished from
                another thread (amqpgwd's EventLoop), as amqpgwd's owner
                threads finish its calls: one thread hand-off per call

--delay_us D (callback-hop only): Publish is finished D microseconds after it
arrives, by a timer on that thread, as amqpgwd finishes it when the broker's
confirm comes: gRPC's cost per call at the calls' rate and concurrency
through amqpgwd (fewer calls per wake-up than when answered at once).
--tick_us T: each such finish is put off to the next multiple of T on the
clock, so that the calls due in one tick are finished together, as one
confirm of several messages finishes their calls together.

Prints the bound address on its first line; runs until SIGTERM or SIGINT.
)";

void Ready(v1::ConnectResponse* response) {
  response->mutable_connection()->set_state(v1::ConnectionInfo::READY);
}

class CallbackGateway : public v1::Gateway::CallbackService {
 public:
  // `hop` (may be null, else started): the thread that finishes Publish and
  // GetStatus; with it, Publish waits `publish_delay` there first.
  CallbackGateway(core::EventLoop* hop, absl::Duration publish_delay,
                  absl::Duration tick)
      : hop_(hop), publish_delay_(publish_delay), tick_(tick) {}

 private:
  ::grpc::ServerUnaryReactor* Connect(::grpc::CallbackServerContext* ctx,
                                      const v1::ConnectRequest*,
                                      v1::ConnectResponse* response) override {
    Ready(response);
    return Done(ctx);
  }
  ::grpc::ServerUnaryReactor* DeclareQueue(::grpc::CallbackServerContext* ctx,
                                           const v1::DeclareQueueRequest*,
                                           v1::DeclareQueueResponse*) override {
    return Done(ctx);
  }
  ::grpc::ServerUnaryReactor* PurgeQueue(::grpc::CallbackServerContext* ctx,
                                         const v1::PurgeQueueRequest*,
                                         v1::PurgeQueueResponse*) override {
    return Done(ctx);
  }
  ::grpc::ServerUnaryReactor* Publish(::grpc::CallbackServerContext* ctx,
                                      const v1::PublishRequest*,
                                      v1::PublishResponse*) override {
    return MaybeHop(ctx, publish_delay_);
  }
  ::grpc::ServerUnaryReactor* GetStatus(::grpc::CallbackServerContext* ctx,
                                        const v1::GetStatusRequest*,
                                        v1::GetStatusResponse*) override {
    return MaybeHop(ctx, absl::ZeroDuration());
  }

  ::grpc::ServerUnaryReactor* MaybeHop(::grpc::CallbackServerContext* ctx,
                                       absl::Duration delay) {
    if (hop_ == nullptr) return Done(ctx);
    ::grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    hop_->Post([hop = hop_, reactor, delay, tick = tick_] {
      if (delay <= absl::ZeroDuration()) {
        reactor->Finish(::grpc::Status::OK);
        return;
      }
      absl::Time when = absl::Now() + delay;
      if (tick > absl::ZeroDuration()) {
        when = absl::UnixEpoch() + absl::Ceil(when - absl::UnixEpoch(), tick);
      }
      hop->RunAt(when, [reactor] { reactor->Finish(::grpc::Status::OK); });
    });
    return reactor;
  }

  static ::grpc::ServerUnaryReactor* Done(::grpc::CallbackServerContext* ctx) {
    ::grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(::grpc::Status::OK);
    return reactor;
  }

  core::EventLoop* const hop_;
  const absl::Duration publish_delay_;
  const absl::Duration tick_;
};

// One pending call of the async API; its tag is itself. Requests the next
// call of its method when one arrives, answers, and deletes itself when the
// answer was sent. Runs on the one completion-queue thread only.
class AsyncCall {
 public:
  virtual ~AsyncCall() = default;
  virtual void Proceed(bool ok) = 0;
};

template <typename Request, typename Response, auto kRequestMethod>
class UnaryCall : public AsyncCall {
 public:
  UnaryCall(v1::Gateway::AsyncService* service,
            ::grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq) {
    (service_->*kRequestMethod)(&ctx_, &request_, &writer_, cq_, cq_, this);
  }

  void Proceed(bool ok) override {
    if (!ok || answered_) {
      delete this;
      return;
    }
    new UnaryCall(service_, cq_);
    if constexpr (std::is_same_v<Response, v1::ConnectResponse>) {
      Ready(&response_);
    }
    answered_ = true;
    writer_.Finish(response_, ::grpc::Status::OK, this);
  }

 private:
  v1::Gateway::AsyncService* const service_;
  ::grpc::ServerCompletionQueue* const cq_;
  ::grpc::ServerContext ctx_;
  Request request_;
  Response response_;
  ::grpc::ServerAsyncResponseWriter<Response> writer_{&ctx_};
  bool answered_ = false;
};

using Async = v1::Gateway::AsyncService;

void RequestAll(Async* service, ::grpc::ServerCompletionQueue* cq) {
  // Several of each waiting, so that concurrent calls need not wait for the
  // next request to be posted.
  for (int i = 0; i < 64; ++i) {
    new UnaryCall<v1::ConnectRequest, v1::ConnectResponse,
                  &Async::RequestConnect>(service, cq);
    new UnaryCall<v1::DeclareQueueRequest, v1::DeclareQueueResponse,
                  &Async::RequestDeclareQueue>(service, cq);
    new UnaryCall<v1::PurgeQueueRequest, v1::PurgeQueueResponse,
                  &Async::RequestPurgeQueue>(service, cq);
    new UnaryCall<v1::PublishRequest, v1::PublishResponse,
                  &Async::RequestPublish>(service, cq);
    new UnaryCall<v1::GetStatusRequest, v1::GetStatusResponse,
                  &Async::RequestGetStatus>(service, cq);
  }
}

int Main(int argc, char** argv) {
  Flags f(argc, argv, kUsage);
  const std::string mode = f.mode();
  std::string listen = f.Str("listen", "127.0.0.1:0");
  const int64_t delay_us = f.Int("delay_us", 0);
  const int64_t tick_us = f.Int("tick_us", 0);
  f.CheckAllUsed();
  if (mode != "callback" && mode != "async" && mode != "async-health" &&
      mode != "callback-hop") {
    f.Die("MODE: callback, callback-hop, async or async-health");
  }
  if (delay_us < 0 || (delay_us > 0 && mode != "callback-hop")) {
    f.Die("--delay_us: a duration >= 0, with callback-hop only");
  }
  if (tick_us < 0 || (tick_us > 0 && delay_us == 0)) {
    f.Die("--tick_us: a duration >= 0, with --delay_us only");
  }
  const bool callback = mode == "callback" || mode == "callback-hop";
  core::EventLoop hop("floor-hop");
  if (mode == "callback-hop") hop.Start(nullptr);

  ::grpc::EnableDefaultHealthCheckService(mode != "async");
  ::grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, ::grpc::InsecureServerCredentials(), &port);
  CallbackGateway callback_service(mode == "callback-hop" ? &hop : nullptr,
                                   absl::Microseconds(delay_us),
                                   absl::Microseconds(tick_us));
  Async async_service;
  std::unique_ptr<::grpc::ServerCompletionQueue> cq;
  if (callback) {
    builder.RegisterService(&callback_service);
  } else {
    builder.RegisterService(&async_service);
    cq = builder.AddCompletionQueue();
  }
  std::unique_ptr<::grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) f.Die("cannot listen on " + listen);
  std::printf("127.0.0.1:%d\n", port);
  std::fflush(stdout);

  std::thread cq_thread;
  if (cq != nullptr) {
    RequestAll(&async_service, cq.get());
    cq_thread = std::thread([q = cq.get()] {
      void* tag;
      bool ok;
      while (q->Next(&tag, &ok)) static_cast<AsyncCall*>(tag)->Proceed(ok);
    });
  }
  // Wait for SIGTERM or SIGINT, then shut down in order.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int signal = 0;
  sigwait(&signals, &signal);
  server->Shutdown();
  hop.Stop();
  if (cq != nullptr) {
    cq->Shutdown();
    cq_thread.join();
  }
  return 0;
}

}  // namespace
}  // namespace amqpgw::bench

int main(int argc, char** argv) {
  // Blocked in every thread (gRPC's start after this), taken by sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return amqpgw::bench::Main(argc, argv);
}
