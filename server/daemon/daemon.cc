#include "server/daemon/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "server/daemon/metrics_server.h"
#include "server/daemon/operations.h"
#include "server/grpc/call_interceptor.h"
#include "spdlog/spdlog.h"

namespace amqpgw::daemon {

Daemon::Daemon(Options options) : options_(std::move(options)) {}

int Daemon::metrics_port() const {
  return metrics_server_ != nullptr ? metrics_server_->port() : 0;
}

Daemon::~Daemon() { Shutdown(); }

absl::Status Daemon::Start() {
  absl::StatusOr<core::SessionOptions> session_options =
      ToSessionOptions(options_);
  if (!session_options.ok()) return session_options.status();

  absl::StatusOr<std::shared_ptr<::grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options_);
  if (!credentials.ok()) return credentials.status();
  if (!options_.auth_tokens.empty()) {
    auto authorizer = grpc_api::Authorizer::FromFile(options_.auth_tokens);
    if (!authorizer.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth_tokens: ", authorizer.status().message()));
    }
    authorizer_ = *std::move(authorizer);
  }
  if (!options_.otlp_endpoint.empty()) {
    trace::OtlpHttpExporter::Options o;
    o.endpoint = options_.otlp_endpoint;
    o.resource.service_version = AMQPGW_VERSION;
    o.resource.service_instance_id = session_options->instance_id;
    auto spans = trace::OtlpHttpExporter::Create(std::move(o));
    if (!spans.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--otlp_endpoint: ", spans.status().message()));
    }
    spans_ = *std::move(spans);
  }
  rpc_metrics_ =
      std::make_unique<metrics::RpcMetrics>(grpc_api::ServedMethodNames());

  session_ = std::make_unique<core::Session>(*session_options);
  session_->SetStateListener([this](core::SessionState state) {
    SetServing(state == core::SessionState::kReady);
  });

  exchange_types_ =
      std::make_unique<core::ExchangeTypes>(core::ExchangeTypes::BrokerProbe(
          session_options->brokers, session_options->open));

  grpc_api::GatewayService::Options service_options;
  service_options.limits.max_message_bytes =
      static_cast<size_t>(options_.max_message_bytes);
  for (const amqp::BrokerAddress& b : session_options->brokers) {
    service_options.limits.broker_users.push_back(b.user);
  }
  service_options.authorizer = authorizer_.get();
  service_options.spans = spans_.get();
  service_options.exchange_types = exchange_types_.get();
  service_ = std::make_unique<grpc_api::GatewayService>(session_.get(),
                                                        service_options);

  // Reflection must see grpc.health.v1 too: Debian's gRPC serves health
  // without registering its descriptor, so ours is linked in and touched.
  (void)::grpc::health::v1::HealthCheckRequest::descriptor();
  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  ::grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, *credentials, &grpc_port_);
  std::vector<
      std::unique_ptr<::grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      std::make_unique<grpc_api::CallInterceptorFactory>(rpc_metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(options_.max_request_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_request_bytes));
  // Keep idle streams alive through proxies; accept client keepalives.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    session_.reset();
    return absl::UnavailableError(
        absl::StrCat("--listen: cannot listen on ", options_.listen,
                     " (address in use or not local?)"));
  }
  RegisterDaemonMetrics(metrics_, session_.get(), rpc_metrics_.get(),
                        spans_.get());
  if (authorizer_ != nullptr) {
    metrics_.Add(
        [a = authorizer_.get()](metrics::TextWriter& w) { a->Collect(w); });
  }
  if (!options_.metrics_listen.empty()) {
    auto m = MetricsServer::Start(options_.metrics_listen,
                                  [this] { return RenderMetrics(); });
    if (!m.ok()) {
      server_->Shutdown();
      server_.reset();
      session_.reset();
      return m.status();
    }
    metrics_server_ = *std::move(m);
    spdlog::info(
        "metrics: http://{}:{}/metrics",
        options_.metrics_listen.substr(0, options_.metrics_listen.rfind(':')),
        metrics_server_->port());
  }
  if (authorizer_ != nullptr) {
    spdlog::info("caller authentication: {} tokens from {}",
                 authorizer_->size(), options_.auth_tokens);
  }
  if (spans_ != nullptr) {
    spdlog::info("tracing: exporting spans to {}", options_.otlp_endpoint);
  }
  WarnAboutRisks(options_, *session_options);
  if (!options_.http_listen.empty()) {
    web::WebServer::Options web_options;
    web_options.listen = options_.http_listen;
    web_options.cors_origins = CorsOrigins(options_);
    web_options.web_root = options_.web_root;
    web_options.max_request_bytes =
        static_cast<size_t>(options_.max_request_bytes);
    web_options.max_connections =
        static_cast<size_t>(options_.http_max_connections);
    // The server enforces its own limits; the bridge's side of the channel
    // must not add the 4 MiB client default on replies.
    ::grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    web_ = std::make_unique<web::WebServer>(web_options,
                                            server_->InProcessChannel(args));
    web_->AddHandler("/metrics", [this](const web::HttpRequest&) {
      web::HttpResponse r;
      r.content_type = metrics::kContentType;
      r.body = RenderMetrics();
      return r;
    });
    absl::Status s = web_->Start();
    if (!s.ok()) {
      web_.reset();
      if (metrics_server_ != nullptr) metrics_server_->Stop();
      metrics_server_.reset();
      server_->Shutdown();
      server_->Wait();
      server_.reset();
      session_.reset();
      return absl::UnavailableError(
          absl::StrCat("--http_listen: ", s.message()));
    }
  }
  health_.store(server_->GetHealthCheckService());
  SetServing(false);
  session_->Start();
  // The session may have become READY before health_ was set.
  SetServing(session_->Info().state == core::SessionState::kReady);
  return absl::OkStatus();
}

void Daemon::SetServing(bool serving) {
  if (shutting_down_.load()) return;
  ::grpc::HealthCheckServiceInterface* health = health_.load();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus("amqpgw.v1.Gateway", serving);
}

std::shared_ptr<::grpc::Channel> Daemon::InProcessChannel() {
  return server_->InProcessChannel(::grpc::ChannelArguments());
}

void Daemon::Shutdown() {
  if (shutting_down_.exchange(true)) {
    stopped_.WaitForNotification();
    return;
  }
  if (server_ == nullptr) {
    stopped_.Notify();
    return;
  }
  spdlog::info(
      "shutting down: health NOT_SERVING, ending streams, {} for "
      "calls in flight",
      absl::FormatDuration(options_.shutdown_grace));
  if (auto* health = health_.load()) health->Shutdown();
  if (web_ != nullptr) web_->BeginStop();
  session_->CancelStreams(
      absl::UnavailableError("the gateway is shutting down"));
  const absl::Time deadline = absl::Now() + options_.shutdown_grace;
  // grpc-web calls travel through the in-process channel, which the gRPC
  // shutdown closes: let them end (and their trailers reach the browser)
  // first, within the same grace.
  if (web_ != nullptr) web_->WaitForCalls(deadline);
  server_->Shutdown(absl::ToChronoTime(deadline));
  if (web_ != nullptr) web_->Stop(absl::Seconds(2));
  // Exchange type checks still waiting end UNAVAILABLE before the session
  // stops (none of them declares anything afterwards).
  exchange_types_.reset();
  session_->Stop();
  server_->Wait();
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  if (spans_ != nullptr) spans_->Shutdown();  // sends what is queued
  spdlog::info("stopped");
  stopped_.Notify();
}

void Daemon::Wait() { stopped_.WaitForNotification(); }

int RunDaemon(const Options& options) {
  // Signals are taken by one thread with sigwait(); block them everywhere
  // else before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Daemon daemon(options);
  absl::Status s = daemon.Start();
  if (!s.ok()) {
    spdlog::error("cannot start: {}", std::string(s.message()));
    return 1;
  }
  spdlog::info("amqpgwd {} listening on {} (gRPC; port {}){}", AMQPGW_VERSION,
               options.listen, daemon.grpc_port(),
               options.tls_cert.empty()        ? ""
               : options.tls_client_ca.empty() ? " with TLS"
                                               : " with mutual TLS");
  if (daemon.http_port() != 0) {
    std::string host =
        options.http_listen.substr(0, options.http_listen.rfind(':'));
    spdlog::info("browser view and grpc-web on http://{}:{}/ (port {})", host,
                 daemon.http_port(), daemon.http_port());
  }
  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("received {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    daemon.Shutdown();
  });
  daemon.Wait();
  signals.join();
  return 0;
}

}  // namespace amqpgw::daemon
