#include "server/daemon/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpc/health/v1/health.pb.h"
#include "server/base/host_port.h"
#include "server/daemon/flags.h"
#include "server/daemon/memory.h"
#include "server/daemon/metrics_server.h"
#include "server/daemon/operations.h"
#include "server/daemon/rate_sampler.h"
#include "server/grpc/auth.h"
#include "server/grpc/call_interceptor.h"
#include "server/grpc/gateway_service.h"
#include "server/management/backend.h"
#include "server/metrics/prometheus.h"
#include "server/metrics/rpc_metrics.h"
#include "server/trace/otlp_exporter.h"
#include "spdlog/spdlog.h"

namespace amqpgw::daemon {
namespace {

// The daemon's one look at the management API, once the session is up.
void LogManagementProbe(const std::string& url,
                        const absl::StatusOr<management::User>& user) {
  if (!user.ok()) {
    spdlog::warn("listing (ListQueues, ...) unavailable: {}",
                 std::string(user.status().message()));
    return;
  }
  spdlog::info(
      "listing: RabbitMQ's management API at {} answers, user {} (tags: {})",
      url, user->name,
      user->tags.empty() ? "none" : absl::StrJoin(user->tags, ", "));
  for (const std::string& tag : user->tags) {
    if (tag == "monitoring" || tag == "administrator") return;
  }
  spdlog::info(
      "listing: user {} has no 'monitoring' tag: other users' consumers are "
      "listed without the names of their connections",
      user->name);
}

}  // namespace

// What Start builds, in dependency order. Members are destroyed in reverse:
// the HTTP port and --metrics_listen close, the gRPC server shuts down (its
// destructor does), the service and the session go (the session's
// destructor stops it), then the metrics registry and the exporters.
struct Daemon::Components {
  metrics::Registry metrics;
  std::unique_ptr<metrics::RpcMetrics> rpc_metrics;
  std::unique_ptr<trace::OtlpHttpExporter> spans;
  std::unique_ptr<MemoryTrimmer> memory;
  // Listing (the broker's management API); outlives the session, whose
  // state listener tells it when the session is up.
  std::unique_ptr<management::Backend> management;
  // Seals the session's subscription ids; outlives the session.
  std::unique_ptr<grpc_api::AckRouter> ack_router;
  std::unique_ptr<core::Session> session;
  // GetStatus's rates; reads the session's counters.
  std::unique_ptr<RateSampler> rates;
  // Destroyed before the session (their waiting checks end first).
  std::unique_ptr<core::ExchangeTypes> exchange_types;
  std::unique_ptr<grpc_api::GatewayService> service;
  std::unique_ptr<::grpc::Server> server;
  std::unique_ptr<MetricsServer> metrics_server;
  std::unique_ptr<web::WebServer> web;
};

Daemon::Daemon(std::shared_ptr<const Config> config)
    : config_(std::move(config)), log_level_(config_->options().log_level) {}

Daemon::~Daemon() { Shutdown(); }

int Daemon::http_port() const {
  return parts_ == nullptr || parts_->web == nullptr ? 0 : parts_->web->port();
}

web::WebServer* Daemon::web() {
  return parts_ == nullptr ? nullptr : parts_->web.get();
}

core::Session& Daemon::session() { return *parts_->session; }

int Daemon::metrics_port() const {
  return parts_ == nullptr || parts_->metrics_server == nullptr
             ? 0
             : parts_->metrics_server->port();
}

std::string Daemon::RenderMetrics() const { return parts_->metrics.Render(); }

absl::Status Daemon::Start() {
  const Options& o = config_->options();
  auto parts = std::make_unique<Components>();
  Components& p = *parts;

  p.rpc_metrics =
      std::make_unique<metrics::RpcMetrics>(grpc_api::ServedMethodNames());
  if (!o.otlp_endpoint.empty()) {
    trace::OtlpHttpExporter::Options t;
    t.endpoint = o.otlp_endpoint;
    t.resource.service_version = AMQPGW_VERSION;
    t.resource.service_instance_id = config_->session().instance_id;
    auto spans = trace::OtlpHttpExporter::Create(std::move(t));
    if (!spans.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--otlp_endpoint: ", spans.status().message()));
    }
    p.spans = *std::move(spans);
  }
  // Open streams' rabbitmq-c pages stay mostly unresident (memory.h).
  FixMmapThreshold();
  // Hands back what malloc keeps after a burst (memory.h).
  p.memory = std::make_unique<MemoryTrimmer>(MemoryTrimmer::Options());

  p.management = std::make_unique<management::Backend>(config_->management(),
                                                       &LogManagementProbe);
  core::SessionOptions session_options = config_->session();
  if (!config_->peer_secret().empty()) {
    grpc_api::AckRouter::Options r;
    r.instance_id = session_options.instance_id;
    r.advertise_address = o.advertise_address;
    r.secret = config_->peer_secret();
    r.credentials = MakePeerCredentials(*config_);
    p.ack_router = std::make_unique<grpc_api::AckRouter>(std::move(r));
    session_options.seal_subscription_id =
        [router = p.ack_router.get()](const std::string& id) {
          return router->Seal(id);
        };
  }
  p.session = std::make_unique<core::Session>(std::move(session_options));
  p.session->SetStateListener(
      [this, session = p.session.get(),
       management = p.management.get()](core::SessionState state) {
        SetServing(state == core::SessionState::kReady);
        if (state != core::SessionState::kReady) return;
        // The management API is looked for on the node the session is on.
        const std::string at = session->Info().broker;
        const auto& brokers = config_->session().brokers;
        std::string host = brokers.front().host;
        for (const amqp::BrokerAddress& b : brokers) {
          if (b.HostPort() == at) host = b.host;
        }
        management->SessionUp(host);
      });

  p.exchange_types =
      std::make_unique<core::ExchangeTypes>(core::ExchangeTypes::BrokerProbe(
          config_->session().brokers, config_->session().open));

  grpc_api::GatewayService::Options service_options;
  service_options.limits.max_message_bytes =
      static_cast<size_t>(o.max_message_bytes);
  service_options.limits.default_message_id = o.default_message_id;
  service_options.limits.max_stream_in_flight =
      static_cast<uint32_t>(o.confirm_window);
  for (const amqp::BrokerAddress& b : config_->session().brokers) {
    service_options.limits.broker_users.push_back(b.user);
  }
  service_options.authorizer = config_->tokens().get();
  service_options.spans = p.spans.get();
  service_options.exchange_types = p.exchange_types.get();
  service_options.management = p.management.get();
  service_options.ack_router = p.ack_router.get();
  p.rates = std::make_unique<RateSampler>(p.session.get());
  service_options.rates = [rates = p.rates.get()](absl::Duration window) {
    return rates->Recent(window);
  };
  p.service = std::make_unique<grpc_api::GatewayService>(p.session.get(),
                                                         service_options);

  // Reflection must see grpc.health.v1 too: Debian's gRPC serves health
  // without registering its descriptor, so ours is linked in and touched.
  (void)::grpc::health::v1::HealthCheckRequest::descriptor();
  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  ::grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, MakeServerCredentials(*config_),
                           &grpc_port_);
  std::vector<
      std::unique_ptr<::grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      std::make_unique<grpc_api::CallInterceptorFactory>(p.rpc_metrics.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(p.service.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(o.max_request_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(o.max_request_bytes));
  // gRPC listens with SO_REUSEPORT by default: a second daemon on the same
  // port would start and the kernel would split connections between the
  // two. Off: the second one fails to bind, as it must.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Keep idle streams alive through proxies; accept client keepalives.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  p.server = builder.BuildAndStart();
  if (p.server == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen: cannot listen on ", o.listen,
                     " (address in use, or not an address of this machine)"));
  }
  RegisterDaemonMetrics(p.metrics, p.session.get(), p.rpc_metrics.get(),
                        p.spans.get());
  RegisterMemoryMetrics(p.metrics, p.memory.get());
  if (config_->tokens() != nullptr) {
    p.metrics.Add([a = config_->tokens().get()](metrics::TextWriter& w) {
      a->Collect(w);
    });
  }

  if (!o.metrics_listen.empty()) {
    auto m = MetricsServer::Start(o.metrics_listen,
                                  [this] { return RenderMetrics(); });
    if (!m.ok()) return m.status();
    p.metrics_server = *std::move(m);
    absl::StatusOr<HostPort> hp = ParseHostPort(o.metrics_listen);
    spdlog::info("metrics: http://{}/metrics",
                 HostPort{hp->host, p.metrics_server->port()}.ToString());
  }
  if (config_->tokens() != nullptr) {
    spdlog::info("caller authentication: {} tokens from {}",
                 config_->tokens()->size(), o.auth_tokens);
  }
  if (p.spans != nullptr) {
    spdlog::info("tracing: exporting spans to {}", o.otlp_endpoint);
  }
  WarnAboutRisks(*config_);

  if (!o.http_listen.empty()) {
    web::WebServer::Options w;
    w.listen = o.http_listen;
    w.tls = config_->http_tls();
    w.cors_origins = config_->cors_origins();
    w.web_root = o.web_root;
    w.max_request_bytes = static_cast<size_t>(o.max_request_bytes);
    w.max_connections = static_cast<size_t>(o.http_max_connections);
    w.header_timeout = o.http_header_timeout;
    w.body_timeout = o.http_body_timeout;
    // The server enforces its own limits; the bridge's side of the channel
    // must not add the 4 MiB client default on replies.
    ::grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    p.web = std::make_unique<web::WebServer>(std::move(w),
                                             p.server->InProcessChannel(args));
    p.web->AddHandler("/metrics", [this](const web::HttpRequest& request) {
      return MetricsPage(request);
    });
    absl::Status s = p.web->Start();
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("--http_listen: ", s.message()));
    }
  }

  // Everything is up: from here on the daemon owns it.
  parts_ = std::move(parts);
  health_.store(parts_->server->GetHealthCheckService());
  SetServing(false);
  parts_->session->Start();
  // The session may have become READY before health_ was set.
  SetServing(parts_->session->Info().state == core::SessionState::kReady);
  return absl::OkStatus();
}

web::HttpResponse Daemon::MetricsPage(const web::HttpRequest& request) const {
  web::HttpResponse r;
  if (const grpc_api::Authorizer* tokens = config_->tokens().get()) {
    std::string header = request.Header("authorization");
    std::optional<absl::string_view> authorization;
    if (!header.empty()) authorization = header;
    // Reading metrics is reading status: any role may.
    absl::Status s =
        tokens->Check(authorization, *grpc_api::FindGatewayRpc("GetStatus"));
    if (!s.ok()) {
      r.status = 401;
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      r.body = absl::StrCat("/metrics: ", s.message(), "\n");
      return r;
    }
  }
  r.content_type = metrics::kContentType;
  r.body = RenderMetrics();
  return r;
}

void Daemon::SetServing(bool serving) {
  if (shutting_down_.load()) return;
  ::grpc::HealthCheckServiceInterface* health = health_.load();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus("amqpgw.v1.Gateway", serving);
}

std::shared_ptr<::grpc::Channel> Daemon::InProcessChannel() {
  return parts_->server->InProcessChannel(::grpc::ChannelArguments());
}

void Daemon::Reload(const Config& next) {
  const Options& now = config_->options();
  const Options& want = next.options();
  int applied = 0;
  if (want.log_level != log_level_) {
    SetLogLevel(want.log_level);
    spdlog::info("reload: --log_level {} (was {})", want.log_level, log_level_);
    log_level_ = want.log_level;
    ++applied;
  }
  grpc_api::Authorizer* tokens = config_->tokens().get();
  if ((tokens == nullptr) != (next.tokens() == nullptr)) {
    spdlog::warn(
        "reload: --auth_tokens: turning caller authentication {} takes a "
        "restart; unchanged",
        tokens == nullptr ? "on" : "off");
  } else if (tokens != nullptr) {
    size_t before = tokens->size();
    tokens->ReplaceWith(*next.tokens());
    spdlog::info("reload: --auth_tokens: {} tokens from {} (was {})",
                 tokens->size(), want.auth_tokens, before);
    ++applied;
  }
  std::vector<std::string> restart;
  for (const FlagDef& f : FlagTable()) {
    if (!f.reloadable && f.print(now) != f.print(want)) {
      restart.push_back("--" + f.name);
    }
  }
  if (!restart.empty()) {
    // Names only: a value may be a secret (a broker URI).
    spdlog::warn(
        "reload: {} changed; that takes a restart (still in force: "
        "the values the daemon started with)",
        absl::StrJoin(restart, ", "));
  }
  if (applied == 0 && restart.empty()) spdlog::info("reload: nothing changed");
}

void Daemon::Shutdown() {
  if (shutting_down_.exchange(true)) {
    stopped_.WaitForNotification();
    return;
  }
  if (parts_ == nullptr) {
    stopped_.Notify();
    return;
  }
  Components& p = *parts_;
  const absl::Duration grace = config_->options().shutdown_grace;
  spdlog::info(
      "shutting down: health NOT_SERVING, draining streams, {} for "
      "calls in flight",
      absl::FormatDuration(grace));
  if (auto* health = health_.load()) health->Shutdown();
  const absl::Time deadline = absl::Now() + grace;
  // Streams drain first, while both ports still take calls (Acks of
  // StreamMessages streams, from gRPC and from browsers) and the balancer,
  // seeing NOT_SERVING, sends new calls elsewhere: each stream hears
  // DRAINING, gets no more deliveries, and ends once its caller has acked
  // what it holds (or at the deadline: the rest is requeued). PublishStreams
  // (the session's drain hooks) read no more and end UNAVAILABLE once every
  // message they read is answered.
  p.session->DrainStreams(grace, "the gateway is shutting down");
  if (!p.session->WaitStreamsEnded(deadline)) {
    spdlog::info("streams still open after {}: the rest is requeued",
                 absl::FormatDuration(grace));
  }
  if (p.web != nullptr) p.web->BeginStop();
  p.session->CancelStreams(
      absl::UnavailableError("the gateway is shutting down"));
  // grpc-web calls travel through the in-process channel, which the gRPC
  // shutdown closes: let them end (and their trailers reach the browser)
  // first, within the same grace.
  if (p.web != nullptr) p.web->WaitForCalls(deadline);
  p.server->Shutdown(absl::ToChronoTime(deadline));
  if (p.web != nullptr) p.web->Stop(absl::Seconds(2));
  // Listing calls still waiting for the management API end UNAVAILABLE.
  p.management->Stop();
  // Exchange type checks still waiting end UNAVAILABLE before the session
  // stops (none of them declares anything afterwards).
  p.exchange_types.reset();
  p.session->Stop();
  p.server->Wait();
  if (p.metrics_server != nullptr) p.metrics_server->Stop();
  if (p.spans != nullptr) p.spans->Shutdown();  // sends what is queued
  spdlog::info("stopped");
  stopped_.Notify();
}

void Daemon::Wait() { stopped_.WaitForNotification(); }

int RunDaemon(
    std::shared_ptr<const Config> config,
    std::function<absl::StatusOr<std::shared_ptr<const Config>>()> reload) {
  // Signals are taken by one thread with sigwait(); block them everywhere
  // else before any thread starts. SIGHUP's default action (exit 129) would
  // cut every stream without a trailer: it reloads instead.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const Options& o = config->options();
  Daemon daemon(config);
  absl::Status s = daemon.Start();
  if (!s.ok()) {
    spdlog::error("cannot start: {}", std::string(s.message()));
    return 1;
  }
  spdlog::info("amqpgwd {} listening on {} (gRPC; port {}){}", AMQPGW_VERSION,
               o.listen, daemon.grpc_port(),
               o.tls_cert.empty()        ? ""
               : o.tls_client_ca.empty() ? " with TLS"
                                         : " with mutual TLS");
  if (daemon.http_port() != 0) {
    absl::StatusOr<HostPort> hp = ParseHostPort(o.http_listen);
    const auto& tls = config->http_tls();
    spdlog::info("browser view and grpc-web on {}://{}/ (port {}){}",
                 tls == nullptr ? "http" : "https",
                 HostPort{hp->host, daemon.http_port()}.ToString(),
                 daemon.http_port(),
                 tls == nullptr                       ? ""
                 : tls->requires_client_certificate() ? " with mutual TLS"
                                                      : " with TLS");
    spdlog::info(
        "Connect protocol (JSON or protobuf) on {}://{}/"
        "amqpgw.v1.Gateway/<Method>",
        tls == nullptr ? "http" : "https",
        HostPort{hp->host, daemon.http_port()}.ToString());
  }
  std::thread signals([&] {
    while (true) {
      int sig = 0;
      sigwait(&set, &sig);
      if (sig == SIGHUP) {
        spdlog::info("received SIGHUP: reloading");
        absl::StatusOr<std::shared_ptr<const Config>> next =
            reload ? reload() : absl::UnimplementedError("no reload source");
        if (next.ok()) {
          daemon.Reload(**next);
        } else {
          spdlog::error("reload failed: {}; the configuration in force stays",
                        std::string(next.status().message()));
        }
        continue;
      }
      spdlog::info("received {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      daemon.Shutdown();
      return;
    }
  });
  daemon.Wait();
  signals.join();
  return 0;
}

}  // namespace amqpgw::daemon
