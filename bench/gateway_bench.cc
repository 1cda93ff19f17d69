// amqpgw-bench: a gRPC load generator for amqpgwd. One key=value summary line
// per run, the same keys as amqpgw-bench-direct, plus the gateway's CPU time
// per message and peak RSS (from /proc of --gateway_pid).
//
// Publishing modes drive C concurrent calls from one thread through a
// CompletionQueue (the client stays cheap, so that the broker and the gateway
// get the machine). `stream` reads one StreamMessages call, `subscribe` one
// Subscribe call (acks in-stream).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "amqpgw/v1/gateway.grpc.pb.h"
#include "bench/common.h"

namespace amqpgw::bench {
namespace {

namespace v1 = ::amqpgw::v1;

constexpr char kUsage[] =
    R"(amqpgw-bench MODE [flags]: load through amqpgwd (gRPC).

Modes:
  publish        unary Publish, --concurrency C calls in flight
  publish-batch  PublishBatch of --batch B messages, --concurrency C calls
  publish-sync   one Publish at a time (latency p50/p99/p999)
  publish-stream PublishStream: --streams K streams (default 1) share the
                 N messages, each asking for --max_in_flight M unconfirmed
                 at the broker; the client writes as gRPC's flow control
                 lets it, as the CLI does, unless --client_window W
                 (latency: from writing a message to its answer)
  status-sync    one GetStatus at a time: the round trip of a gRPC call
                 through the gateway without the broker (the floor under
                 publish-sync's latency); --pause_us U idles U us between
                 calls, as publish-sync idles while the broker confirms
  stream         StreamMessages with --prefetch and --ack; --fill first
                 publishes N messages (not timed)
  subscribe      Subscribe with --prefetch and --max_batch, acking every
                 --ack_batch deliveries on the stream (max_messages N: the
                 gateway ends the stream once all N are acked); --fill
                 first publishes N messages (not timed)
  streams        --streams K idle streams on K queues for --duration: the
                 gateway's CPU and RSS with many open streams; --trickle R
                 publishes R messages/s in all to them meanwhile (latency:
                 from Publish to delivery, p50/p99)

Flags:
  --server HOST:PORT  the gateway (default 127.0.0.1:50051)
  --queue NAME        durable queue, declared if missing (amqpgw-bench)
  -n N                messages (default 100000; 100k and 1m work)
  --size S            body bytes (default 100)
  --transient         TRANSIENT delivery (default PERSISTENT)
  --concurrency C     calls in flight (default 1; publish-sync: always 1)
  --batch B           publish-batch: messages per call (default 256)
  --prefetch P        stream, subscribe: prefetch (default 1000)
  --ack MODE          stream: auto, client or none (default auto)
  --ack_batch K       stream --ack client: ids per Ack call; subscribe: ids
                      per in-stream ack (default P/4)
  --max_batch B       stream, subscribe: up to B deliveries per response
                      (default 0: stream one each, subscribe 1)
  --fill              stream, subscribe: publish N messages first
                      (PublishBatch)
  --purge             purge the queue before the run
  --warmup M          publish modes: M messages first, not timed
  --streams K         streams, publish-stream: how many (default 100;
                      publish-stream: 1)
  --max_in_flight M   publish-stream: per stream (default 256)
  --answers_per_response K
                      publish-stream: ask for up to K answers per response
                      (max_answers_per_response; default 1)
  --client_window W   publish-stream: the client also keeps at most W
                      unanswered, counted from its side (default 0: it
                      leaves the window to the gateway)
  --trickle R         streams: messages per second to the streams (default 0)
  --duration D        streams: seconds to measure (default 60)
  --gateway_pid PID   report the gateway's CPU per message and peak RSS
  --broker_pid PID    the same for the broker
  --pause_us U        status-sync: idle U microseconds between calls
  --label TEXT        echoed in the summary
)";

struct Options {
  std::string server;
  std::string queue;
  int64_t n;
  int64_t size;
  bool persistent;
  int64_t concurrency;
  int64_t batch;
  int64_t prefetch;
  std::string ack;
  int64_t ack_batch;
  int64_t max_batch;
  bool fill;
  bool purge;
  int64_t warmup;
  int64_t streams;
  double duration;
  pid_t gateway_pid;
  pid_t broker_pid;
  std::string label;
  int64_t pause_us;
  int64_t max_in_flight;
  int64_t client_window;
  int64_t answers_per_response;
  double trickle;
  bool streams_given;
};

[[noreturn]] void Fatal(const std::string& what) {
  std::fprintf(stderr, "amqpgw-bench: %s\n", what.c_str());
  std::exit(1);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& server,
                                           int index) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // A distinct argument gives each channel its own connection.
  args.SetInt("amqpgw.bench.channel", index);
  // The tool never retries, and gRPC's retry filter (on by default) costs
  // CPU on every call that the broker and the gateway share with this
  // process: `publish --concurrency 64` took 60-65 us of client CPU per call
  // with it and 46-58 without (4 alternating pairs, one amqpgwd).
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(),
                                   args);
}

std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

void CheckOk(const grpc::Status& s, const std::string& what) {
  if (!s.ok()) {
    Fatal(absl::StrCat(what, ": ", static_cast<int>(s.error_code()), " ",
                       s.error_message()));
  }
}

// Waits until the gateway is READY, then declares (and maybe purges) the queue.
void Prepare(v1::Gateway::Stub& stub, const std::string& queue, bool purge,
             bool durable = true) {
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(60)));
    v1::ConnectRequest req;
    req.mutable_wait()->set_seconds(55);
    v1::ConnectResponse resp;
    CheckOk(stub.Connect(&ctx, req, &resp), "Connect");
    if (resp.connection().state() != v1::ConnectionInfo::READY) {
      Fatal("the gateway is not READY: " + resp.connection().last_error());
    }
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(30)));
    v1::DeclareQueueRequest req;
    req.set_name(queue);
    req.set_durable(durable);
    v1::DeclareQueueResponse resp;
    CheckOk(stub.DeclareQueue(&ctx, req, &resp), "DeclareQueue " + queue);
  }
  if (purge) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(60)));
    v1::PurgeQueueRequest req;
    req.set_name(queue);
    v1::PurgeQueueResponse resp;
    CheckOk(stub.PurgeQueue(&ctx, req, &resp), "PurgeQueue");
  }
}

v1::PublishRequest MakeMessage(const Options& o) {
  v1::PublishRequest m;
  m.set_routing_key(o.queue);
  m.set_body(MakeBody(static_cast<size_t>(o.size)));
  m.mutable_properties()->set_delivery_mode(o.persistent ? v1::PERSISTENT
                                                         : v1::TRANSIENT);
  return m;
}

struct PublishResult {
  uint64_t ok = 0;
  uint64_t errors = 0;
  std::string first_error;
};

// Publishes `n` messages as calls of `batch` messages (batch 0: unary
// Publish), `concurrency` calls in flight, from this thread.
PublishResult DrivePublish(v1::Gateway::Stub& stub, const Options& o, int64_t n,
                           int64_t batch, int64_t concurrency, Latencies* lat) {
  const v1::PublishRequest message = MakeMessage(o);
  v1::PublishBatchRequest batch_request;
  for (int64_t i = 0; i < std::max<int64_t>(batch, 1); ++i) {
    *batch_request.add_messages() = message;
  }
  struct Call {
    grpc::ClientContext ctx;
    v1::PublishResponse response;
    v1::PublishBatchResponse batch_response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::PublishResponse>> one;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::PublishBatchResponse>>
        many;
    int64_t started = 0;
    int64_t count = 0;
  };
  grpc::CompletionQueue cq;
  PublishResult result;
  int64_t issued = 0, in_flight = 0;
  auto start = [&]() {
    int64_t count = batch > 0 ? std::min(batch, n - issued) : 1;
    auto* call = new Call();
    call->count = count;
    call->ctx.set_deadline(In(absl::Seconds(120)));
    call->started = NowNs();
    if (batch > 0) {
      if (count == batch) {
        call->many = stub.AsyncPublishBatch(&call->ctx, batch_request, &cq);
      } else {
        v1::PublishBatchRequest last;
        for (int64_t i = 0; i < count; ++i) *last.add_messages() = message;
        call->many = stub.AsyncPublishBatch(&call->ctx, last, &cq);
      }
      call->many->Finish(&call->batch_response, &call->status, call);
    } else {
      call->one = stub.AsyncPublish(&call->ctx, message, &cq);
      call->one->Finish(&call->response, &call->status, call);
    }
    issued += count;
    ++in_flight;
  };
  while (issued < n && in_flight < concurrency) start();
  void* tag;
  bool ok;
  while (in_flight > 0 && cq.Next(&tag, &ok)) {
    auto* call = static_cast<Call*>(tag);
    --in_flight;
    if (lat != nullptr) lat->Add(NowNs() - call->started);
    if (!call->status.ok()) {
      result.errors += static_cast<uint64_t>(call->count);
      if (result.first_error.empty()) {
        result.first_error = call->status.error_message();
      }
    } else if (batch > 0) {
      result.ok += call->batch_response.ok_count();
      uint64_t bad =
          static_cast<uint64_t>(call->count) - call->batch_response.ok_count();
      result.errors += bad;
      if (bad > 0 && result.first_error.empty()) {
        for (const auto& r : call->batch_response.results()) {
          if (r.code() != 0) {
            result.first_error = r.error();
            break;
          }
        }
      }
    } else {
      ++result.ok;
    }
    delete call;
    if (issued < n) start();
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

int RunPublish(const Options& o, const std::string& mode) {
  auto stub = v1::Gateway::NewStub(MakeChannel(o.server, 0));
  Prepare(*stub, o.queue, o.purge);
  int64_t batch = mode == "publish-batch" ? o.batch : 0;
  int64_t concurrency = mode == "publish-sync" ? 1 : o.concurrency;
  if (o.warmup > 0)
    DrivePublish(*stub, o, o.warmup, batch, concurrency, nullptr);

  ProcWatch gateway(o.gateway_pid), broker(o.broker_pid);
  Latencies lat;
  gateway.Start();
  broker.Start();
  double cpu0 = SelfCpuSeconds();
  absl::Time start = absl::Now();
  PublishResult r = DrivePublish(*stub, o, o.n, batch, concurrency, &lat);
  absl::Duration elapsed = absl::Now() - start;
  double client_cpu = SelfCpuSeconds() - cpu0;
  gateway.Stop();
  broker.Stop();

  Summary s;
  s.Set("tool", "gateway").Set("mode", mode);
  if (!o.label.empty()) s.Set("label", o.label);
  s.Set("n", o.n).Set("size", o.size).Set("persistent", o.persistent ? 1 : 0);
  if (batch > 0) s.Set("batch", batch);
  s.Set("concurrency", concurrency);
  s.Set("ok", static_cast<int64_t>(r.ok))
      .Set("errors", static_cast<int64_t>(r.errors));
  AddThroughput(s, static_cast<uint64_t>(o.n), elapsed);
  // Per call: for publish-batch the latency of a whole batch.
  AddLatencies(s, lat);
  AddClientCpu(s, client_cpu, static_cast<uint64_t>(o.n));
  AddProcess(s, "gw", gateway, static_cast<uint64_t>(o.n), elapsed);
  AddProcess(s, "broker", broker, static_cast<uint64_t>(o.n), elapsed);
  s.Print();
  if (r.errors > 0) {
    std::fprintf(stderr, "amqpgw-bench: %llu errors, first: %s\n",
                 static_cast<unsigned long long>(r.errors),
                 r.first_error.c_str());
    return 1;
  }
  return 0;
}

// One PublishStream writing `n` copies of a message, asking the gateway for
// at most `max_in_flight` unconfirmed at the broker, one write in flight;
// answers counted and timed. With `client_window` > 0 it also keeps at most
// that many unanswered from its own side, which counts the messages on
// their way to the gateway and the answers on their way back too, so the
// broker then sees fewer than max_in_flight.
class StreamPublisher
    : public grpc::ClientBidiReactor<v1::PublishStreamRequest,
                                     v1::PublishStreamResponse> {
 public:
  StreamPublisher(v1::Gateway::Stub* stub, const v1::PublishRequest& message,
                  int64_t n, int64_t max_in_flight, int64_t client_window,
                  int64_t answers_per_response)
      : n_(n), window_(client_window > 0 ? client_window : n) {
    ctx_.set_deadline(In(absl::Minutes(30)));
    *request_.mutable_message() = message;
    request_.set_max_in_flight(static_cast<uint32_t>(max_in_flight));
    request_.set_max_answers_per_response(
        static_cast<uint32_t>(answers_per_response));
    sent_at_.resize(static_cast<size_t>(n));
    lat_.Reserve(static_cast<size_t>(n));
    stub->async()->PublishStream(&ctx_, this);
    StartRead(&response_);
    Next();
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return;  // the stream ended: OnDone says why
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
    }
    Next();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (response_.answers_size() == 0) {
        Count(response_.sequence(), response_.result());
      }
      for (const v1::PublishStreamAnswer& a : response_.answers()) {
        Count(a.sequence(), a.result());
      }
    }
    StartRead(&response_);
    Next();
  }
  void OnDone(const grpc::Status& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = s;
    done_ = true;
    cv_.notify_all();
  }

  // Waits for the stream's end; adds its latencies to `lat`.
  PublishResult Wait(Latencies* lat) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    if (!status_.ok()) {
      result_.errors += static_cast<uint64_t>(n_) - answered_;
      if (result_.first_error.empty()) {
        result_.first_error = "PublishStream: " + status_.error_message();
      }
    }
    if (lat != nullptr) lat_.MergeInto(lat);
    return result_;
  }

 private:
  // One answer, under mu_.
  void Count(uint64_t seq, const v1::PublishResult& result) {
    ++answered_;
    if (seq >= 1 && seq <= static_cast<uint64_t>(n_)) {
      lat_.Add(NowNs() - sent_at_[seq - 1]);
    }
    if (result.code() == 0) {
      ++result_.ok;
    } else {
      ++result_.errors;
      if (result_.first_error.empty()) result_.first_error = result.error();
    }
  }

  // Starts the next write, or the half-close after the last: at most
  // window_ unanswered. While the window lets the next message
  // follow at once (OnWriteDone starts it), gRPC may gather this one with it
  // in one frame and system call, as the CLI's writes are; every 64th and
  // the one that fills the window are sent at once.
  void Next() {
    bool write = false, close = false;
    grpc::WriteOptions options;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_ || closed_) return;
      if (issued_ < n_ && issued_ - static_cast<int64_t>(answered_) < window_) {
        writing_ = true;
        write = true;
        ++issued_;
        sent_at_[static_cast<size_t>(issued_ - 1)] = NowNs();
        request_.set_sequence(static_cast<uint64_t>(issued_));
        if (issued_ == 2) {
          request_.clear_max_in_flight();
          request_.clear_max_answers_per_response();
        }
        bool more =
            issued_ < n_ && issued_ - static_cast<int64_t>(answered_) < window_;
        if (more && issued_ % 64 != 0) options.set_buffer_hint();
      } else if (issued_ == n_) {
        closed_ = true;
        close = true;
      }
    }
    if (write) StartWrite(&request_, options);
    if (close) StartWritesDone();
  }

  const int64_t n_;
  const int64_t window_;
  grpc::ClientContext ctx_;
  v1::PublishStreamRequest request_;
  v1::PublishStreamResponse response_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> sent_at_;
  Latencies lat_;
  int64_t issued_ = 0;
  uint64_t answered_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  bool done_ = false;
  PublishResult result_;
  grpc::Status status_;
};

int RunPublishStream(const Options& o) {
  const int64_t streams = o.streams_given ? o.streams : 1;
  constexpr int64_t kPerChannel = 100;
  std::vector<std::unique_ptr<v1::Gateway::Stub>> stubs;
  for (int64_t i = 0; i < (streams + kPerChannel - 1) / kPerChannel; ++i) {
    stubs.push_back(
        v1::Gateway::NewStub(MakeChannel(o.server, static_cast<int>(i))));
  }
  Prepare(*stubs[0], o.queue, o.purge);
  const v1::PublishRequest message = MakeMessage(o);
  if (o.warmup > 0) {
    StreamPublisher warm(stubs[0].get(), message, o.warmup, o.max_in_flight,
                         o.client_window, o.answers_per_response);
    warm.Wait(nullptr);
  }
  ProcWatch gateway(o.gateway_pid), broker(o.broker_pid);
  Latencies lat;
  gateway.Start();
  broker.Start();
  double cpu0 = SelfCpuSeconds();
  absl::Time start = absl::Now();
  std::vector<std::unique_ptr<StreamPublisher>> publishers;
  for (int64_t i = 0; i < streams; ++i) {
    int64_t share = o.n / streams + (i < o.n % streams ? 1 : 0);
    if (share == 0) continue;
    publishers.push_back(std::make_unique<StreamPublisher>(
        stubs[static_cast<size_t>(i / kPerChannel)].get(), message, share,
        o.max_in_flight, o.client_window, o.answers_per_response));
  }
  PublishResult r;
  for (auto& p : publishers) {
    PublishResult one = p->Wait(&lat);
    r.ok += one.ok;
    r.errors += one.errors;
    if (r.first_error.empty()) r.first_error = one.first_error;
  }
  absl::Duration elapsed = absl::Now() - start;
  double client_cpu = SelfCpuSeconds() - cpu0;
  gateway.Stop();
  broker.Stop();

  Summary s;
  s.Set("tool", "gateway").Set("mode", "publish-stream");
  if (!o.label.empty()) s.Set("label", o.label);
  s.Set("n", o.n).Set("size", o.size).Set("persistent", o.persistent ? 1 : 0);
  s.Set("streams", streams).Set("max_in_flight", o.max_in_flight);
  s.Set("client_window", o.client_window)
      .Set("answers_per_response", o.answers_per_response);
  s.Set("ok", static_cast<int64_t>(r.ok))
      .Set("errors", static_cast<int64_t>(r.errors));
  AddThroughput(s, static_cast<uint64_t>(o.n), elapsed);
  AddLatencies(s, lat);
  AddClientCpu(s, client_cpu, static_cast<uint64_t>(o.n));
  AddProcess(s, "gw", gateway, static_cast<uint64_t>(o.n), elapsed);
  AddProcess(s, "broker", broker, static_cast<uint64_t>(o.n), elapsed);
  s.Print();
  if (r.errors > 0) {
    std::fprintf(stderr, "amqpgw-bench: %llu errors, first: %s\n",
                 static_cast<unsigned long long>(r.errors),
                 r.first_error.c_str());
    return 1;
  }
  return 0;
}

// N GetStatus calls one at a time, the way publish-sync calls Publish: what
// a unary call through the gateway costs before the broker does anything.
int RunStatusSync(const Options& o) {
  auto stub = v1::Gateway::NewStub(MakeChannel(o.server, 0));
  auto call = [&stub]() {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(30)));
    v1::GetStatusResponse response;
    return stub->GetStatus(&ctx, v1::GetStatusRequest(), &response);
  };
  if (grpc::Status first = call(); !first.ok()) {
    Fatal(absl::StrCat("GetStatus: ", first.error_message()));
  }
  for (int64_t i = 0; i < std::max<int64_t>(o.warmup, 100); ++i) call();
  ProcWatch gateway(o.gateway_pid);
  Latencies lat;
  lat.Reserve(static_cast<size_t>(o.n));
  int64_t errors = 0;
  gateway.Start();
  double cpu0 = SelfCpuSeconds();
  absl::Time start = absl::Now();
  for (int64_t i = 0; i < o.n; ++i) {
    if (o.pause_us > 0) absl::SleepFor(absl::Microseconds(o.pause_us));
    int64_t t0 = NowNs();
    if (!call().ok()) ++errors;
    lat.Add(NowNs() - t0);
  }
  absl::Duration elapsed = absl::Now() - start;
  double client_cpu = SelfCpuSeconds() - cpu0;
  gateway.Stop();

  Summary s;
  s.Set("tool", "gateway").Set("mode", "status-sync");
  if (!o.label.empty()) s.Set("label", o.label);
  s.Set("n", o.n).Set("pause_us", o.pause_us);
  s.Set("ok", o.n - errors).Set("errors", errors);
  AddThroughput(s, static_cast<uint64_t>(o.n), elapsed);
  AddLatencies(s, lat);
  AddClientCpu(s, client_cpu, static_cast<uint64_t>(o.n));
  AddProcess(s, "gw", gateway, static_cast<uint64_t>(o.n), elapsed);
  s.Print();
  return errors == 0 ? 0 : 1;
}

// Sends Ack calls for CLIENT streams without blocking the reader.
class Acker {
 public:
  explicit Acker(v1::Gateway::Stub* stub) : stub_(stub) {}
  ~Acker() { Wait(); }

  void Ack(const std::string& subscription, std::vector<uint64_t> ids) {
    struct Call {
      grpc::ClientContext ctx;
      v1::AckRequest req;
      v1::AckResponse resp;
    };
    auto* call = new Call();
    call->ctx.set_deadline(In(absl::Seconds(60)));
    call->req.set_subscription_id(subscription);
    for (uint64_t id : ids) call->req.add_delivery_ids(id);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++pending_;
    }
    stub_->async()->Ack(&call->ctx, &call->req, &call->resp,
                        [this, call](grpc::Status s) {
                          if (!s.ok()) Fatal("Ack: " + s.error_message());
                          delete call;
                          std::lock_guard<std::mutex> lock(mu_);
                          if (--pending_ == 0) cv_.notify_all();
                        });
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  v1::Gateway::Stub* stub_;
  std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
};

int RunStream(const Options& o) {
  auto stub = v1::Gateway::NewStub(MakeChannel(o.server, 0));
  Prepare(*stub, o.queue, o.purge);
  if (o.fill) {
    PublishResult r = DrivePublish(*stub, o, o.n, 1000, 2, nullptr);
    if (r.errors > 0) Fatal("--fill: " + r.first_error);
  }
  v1::StreamMessagesRequest req;
  req.set_queue(o.queue);
  req.set_prefetch(static_cast<uint32_t>(o.prefetch));
  req.set_max_messages(static_cast<uint64_t>(o.n));
  req.set_max_batch(static_cast<uint32_t>(o.max_batch));
  req.set_ack_mode(o.ack == "client" ? v1::StreamMessagesRequest::CLIENT
                   : o.ack == "none" ? v1::StreamMessagesRequest::NONE
                                     : v1::StreamMessagesRequest::AUTO);

  ProcWatch gateway(o.gateway_pid), broker(o.broker_pid);
  Acker acker(stub.get());
  gateway.Start();
  broker.Start();
  double cpu0 = SelfCpuSeconds();
  absl::Time start = absl::Now();
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Minutes(30)));
  std::unique_ptr<grpc::ClientReader<v1::StreamMessagesResponse>> reader =
      stub->StreamMessages(&ctx, req);
  v1::StreamMessagesResponse event;
  int64_t got = 0;
  int64_t responses = 0;  // that carried deliveries
  uint64_t bytes = 0;
  std::string subscription;
  std::vector<uint64_t> ids;
  absl::Time last_delivery;
  while (reader->Read(&event)) {
    if (event.has_subscribed()) {
      subscription = event.subscribed().subscription_id();
      continue;
    }
    auto take = [&](const v1::Delivery& d) {
      ++got;
      bytes += d.body().size();
      if (o.ack == "client") {
        ids.push_back(d.delivery_id());
        if (static_cast<int64_t>(ids.size()) >= o.ack_batch || got == o.n) {
          acker.Ack(subscription, std::move(ids));
          ids.clear();
        }
      }
      if (got == o.n) last_delivery = absl::Now();
    };
    if (event.has_delivery()) take(event.delivery());
    for (const v1::Delivery& d : event.batch().deliveries()) take(d);
    if (event.has_delivery() || event.has_batch()) ++responses;
  }
  grpc::Status status = reader->Finish();
  acker.Wait();
  // Throughput up to the last delivery (as the direct tool); the gateway's
  // CPU until the stream ended (its last acks included).
  absl::Duration elapsed = (got == o.n ? last_delivery : absl::Now()) - start;
  double client_cpu = SelfCpuSeconds() - cpu0;
  gateway.Stop();
  broker.Stop();
  if (!status.ok()) {
    Fatal(absl::StrCat("StreamMessages ended ",
                       static_cast<int>(status.error_code()), ": ",
                       status.error_message(), " after ", got, " deliveries"));
  }

  Summary s;
  s.Set("tool", "gateway").Set("mode", "stream");
  if (!o.label.empty()) s.Set("label", o.label);
  s.Set("n", o.n).Set("size", o.size).Set("persistent", o.persistent ? 1 : 0);
  s.Set("prefetch", o.prefetch).Set("ack", o.ack);
  if (o.ack == "client") s.Set("ack_batch", o.ack_batch);
  if (o.max_batch > 0) {
    s.Set("max_batch", o.max_batch)
        .Set("deliveries_per_response",
             static_cast<double>(got) / std::max<int64_t>(1, responses), 1);
  }
  s.Set("ok", got).Set("errors", o.n - got);
  AddThroughput(s, static_cast<uint64_t>(got), elapsed);
  AddClientCpu(s, client_cpu, static_cast<uint64_t>(got));
  AddProcess(s, "gw", gateway, static_cast<uint64_t>(got), elapsed);
  AddProcess(s, "broker", broker, static_cast<uint64_t>(got), elapsed);
  s.Print();
  return got == o.n ? 0 : 1;
}

// One Subscribe stream: reads batches on this thread and acks every
// --ack_batch deliveries on the same stream (a sync stream may be written
// from the reading thread: the gateway reads acks as they come, so a Write
// never waits long). max_messages N: the gateway ends the stream OK with its
// summary once all N are acked.
int RunSubscribe(const Options& o) {
  auto stub = v1::Gateway::NewStub(MakeChannel(o.server, 0));
  Prepare(*stub, o.queue, o.purge);
  if (o.fill) {
    PublishResult r = DrivePublish(*stub, o, o.n, 1000, 2, nullptr);
    if (r.errors > 0) Fatal("--fill: " + r.first_error);
  }
  v1::SubscribeRequest first;
  v1::SubscribeStart* start = first.mutable_start();
  start->set_queue(o.queue);
  start->set_prefetch(static_cast<uint32_t>(o.prefetch));
  start->set_max_messages(static_cast<uint64_t>(o.n));
  start->set_max_batch(static_cast<uint32_t>(o.max_batch));

  ProcWatch gateway(o.gateway_pid), broker(o.broker_pid);
  gateway.Start();
  broker.Start();
  double cpu0 = SelfCpuSeconds();
  absl::Time start_time = absl::Now();
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Minutes(30)));
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>>
      stream = stub->Subscribe(&ctx);
  if (!stream->Write(first)) Fatal("Subscribe: the first write failed");
  v1::SubscribeResponse event;
  v1::SubscribeRequest ack;
  int64_t got = 0;
  int64_t responses = 0;  // that carried deliveries
  int64_t ack_requests = 0;
  uint64_t applied = 0, stale = 0;
  bool have_summary = false;
  v1::SubscribeSummary summary;
  absl::Time last_delivery;
  while (stream->Read(&event)) {
    if (event.has_ack()) {
      applied += event.ack().applied_ids_size();
      stale += event.ack().stale_ids_size();
    } else if (event.has_summary()) {
      have_summary = true;
      summary = event.summary();
    }
    if (!event.has_batch()) continue;
    ++responses;
    bool open = true;
    for (const v1::Delivery& d : event.batch().deliveries()) {
      ++got;
      ack.mutable_ack()->add_delivery_ids(d.delivery_id());
      if (got == o.n) last_delivery = absl::Now();
      // Exactly every --ack_batch deliveries (and the last), as the direct
      // tool acks, wherever the batches end.
      if (ack.ack().delivery_ids_size() >= o.ack_batch || got >= o.n) {
        ++ack_requests;
        open = stream->Write(ack);
        ack.clear_ack();
        if (!open) break;  // the stream ended; Finish says why
      }
    }
    if (!open) break;
  }
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  // Throughput up to the last delivery (as the direct tool); the gateway's
  // CPU until the stream ended (its last acks included).
  absl::Duration elapsed =
      (got == o.n ? last_delivery : absl::Now()) - start_time;
  double client_cpu = SelfCpuSeconds() - cpu0;
  gateway.Stop();
  broker.Stop();
  if (!status.ok()) {
    Fatal(absl::StrCat("Subscribe ended ",
                       static_cast<int>(status.error_code()), ": ",
                       status.error_message(), " after ", got, " deliveries"));
  }
  if (!have_summary || summary.acked() != static_cast<uint64_t>(o.n)) {
    Fatal(absl::StrCat("Subscribe: summary acked ", summary.acked(), " of ",
                       o.n, have_summary ? "" : " (no summary)"));
  }

  Summary s;
  s.Set("tool", "gateway").Set("mode", "subscribe");
  if (!o.label.empty()) s.Set("label", o.label);
  s.Set("n", o.n).Set("size", o.size).Set("persistent", o.persistent ? 1 : 0);
  s.Set("prefetch", o.prefetch).Set("ack", "in-stream");
  s.Set("ack_batch", o.ack_batch).Set("ack_requests", ack_requests);
  s.Set("max_batch", o.max_batch)
      .Set("deliveries_per_response",
           static_cast<double>(got) / std::max<int64_t>(1, responses), 1);
  s.Set("acked", static_cast<int64_t>(applied))
      .Set("stale", static_cast<int64_t>(stale));
  s.Set("ok", got).Set("errors", o.n - got);
  AddThroughput(s, static_cast<uint64_t>(got), elapsed);
  AddClientCpu(s, client_cpu, static_cast<uint64_t>(got));
  AddProcess(s, "gw", gateway, static_cast<uint64_t>(got), elapsed);
  AddProcess(s, "broker", broker, static_cast<uint64_t>(got), elapsed);
  s.Print();
  return got == o.n ? 0 : 1;
}

// Delivery latencies of the trickle (streams --trickle), from all streams.
struct SharedLatencies {
  std::mutex mu;
  Latencies lat;
};

// One idle stream: counts `subscribed`, ends when cancelled. A delivery's
// body is the NowNs() of its Publish: its latency goes to `lat`.
class IdleStream : public grpc::ClientReadReactor<v1::StreamMessagesResponse> {
 public:
  IdleStream(v1::Gateway::Stub* stub, const std::string& queue,
             std::atomic<int>* subscribed, std::atomic<int>* done,
             SharedLatencies* lat)
      : subscribed_(subscribed), done_(done), lat_(lat) {
    req_.set_queue(queue);
    req_.set_prefetch(100);
    stub->async()->StreamMessages(&ctx_, &req_, this);
    StartRead(&event_);
    StartCall();
  }
  void Cancel() { ctx_.TryCancel(); }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (event_.has_subscribed()) subscribed_->fetch_add(1);
    if (event_.has_delivery()) {
      int64_t sent = 0;
      if (absl::SimpleAtoi(event_.delivery().body(), &sent) && sent > 0) {
        int64_t ns = NowNs() - sent;
        std::lock_guard<std::mutex> lock(lat_->mu);
        lat_->lat.Add(ns);
      }
    }
    StartRead(&event_);
  }
  void OnDone(const grpc::Status& s) override {
    status_ = s;
    done_->fetch_add(1);
  }
  const grpc::Status& status() const { return status_; }

 private:
  grpc::ClientContext ctx_;
  v1::StreamMessagesRequest req_;
  v1::StreamMessagesResponse event_;
  std::atomic<int>* subscribed_;
  std::atomic<int>* done_;
  SharedLatencies* lat_;
  grpc::Status status_;
};

// Publishes `rate` messages a second in all, round robin to `queues`, each
// body its NowNs(), with unary Publish calls in flight side by side, until
// stopped. Counts what failed.
class Trickle {
 public:
  Trickle(v1::Gateway::Stub* stub, std::vector<std::string> queues, double rate)
      : stub_(stub), queues_(std::move(queues)), rate_(rate) {
    if (rate_ > 0) thread_ = std::thread([this] { Run(); });
  }
  ~Trickle() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    while (pending_.load() > 0) absl::SleepFor(absl::Milliseconds(1));
  }
  int64_t sent() const { return sent_.load(); }
  int64_t failed() const { return failed_.load(); }

 private:
  struct Call {
    grpc::ClientContext ctx;
    v1::PublishRequest req;
    v1::PublishResponse resp;
  };
  void Run() {
    const absl::Duration every = absl::Seconds(1 / rate_);
    absl::Time next = absl::Now();
    size_t i = 0;
    while (!stop_.load()) {
      absl::SleepFor(next - absl::Now());  // pacing, not synchronisation
      next += every;
      auto* call = new Call();
      call->ctx.set_deadline(In(absl::Seconds(30)));
      call->req.set_routing_key(queues_[i++ % queues_.size()]);
      call->req.set_body(absl::StrCat(NowNs()));
      ++pending_;
      stub_->async()->Publish(&call->ctx, &call->req, &call->resp,
                              [this, call](grpc::Status s) {
                                if (s.ok()) {
                                  ++sent_;
                                } else {
                                  ++failed_;
                                }
                                delete call;
                                --pending_;
                              });
    }
  }
  v1::Gateway::Stub* stub_;
  const std::vector<std::string> queues_;
  const double rate_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> pending_{0}, sent_{0}, failed_{0};
  std::thread thread_;
};

bool WaitUntil(const std::function<bool()>& cond, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!cond()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));  // polling with a deadline
  }
  return true;
}

int RunStreams(const Options& o) {
  // 100 streams per HTTP/2 connection, like a fleet of clients would.
  constexpr int kPerChannel = 100;
  std::vector<std::unique_ptr<v1::Gateway::Stub>> stubs;
  for (int64_t i = 0; i < (o.streams + kPerChannel - 1) / kPerChannel; ++i) {
    stubs.push_back(
        v1::Gateway::NewStub(MakeChannel(o.server, static_cast<int>(i))));
  }
  ProcWatch gateway(o.gateway_pid);
  double rss_before = gateway.RssMb();
  std::vector<std::string> queues;
  for (int64_t i = 0; i < o.streams; ++i) {
    queues.push_back(absl::StrCat(o.queue, "-idle-", i));
    Prepare(*stubs[0], queues.back(), /*purge=*/false, /*durable=*/false);
  }
  std::atomic<int> subscribed{0}, done{0};
  SharedLatencies lat;
  std::vector<std::unique_ptr<IdleStream>> streams;
  absl::Time open_start = absl::Now();
  for (int64_t i = 0; i < o.streams; ++i) {
    streams.push_back(std::make_unique<IdleStream>(
        stubs[static_cast<size_t>(i / kPerChannel)].get(), queues[i],
        &subscribed, &done, &lat));
  }
  if (!WaitUntil([&] { return subscribed.load() == o.streams; },
                 absl::Seconds(120))) {
    Fatal(absl::StrCat("only ", subscribed.load(), " of ", o.streams,
                       " streams subscribed (", done.load(), " ended)"));
  }
  absl::Duration open_time = absl::Now() - open_start;
  absl::SleepFor(absl::Seconds(1));  // let the opening settle
  gateway.Start();
  absl::Time start = absl::Now();
  Trickle trickle(stubs[0].get(), queues, o.trickle);
  absl::SleepFor(absl::Seconds(o.duration));
  trickle.Stop();
  absl::Duration elapsed = absl::Now() - start;
  gateway.Stop();
  double rss_open = gateway.RssMb();
  for (auto& s : streams) s->Cancel();
  WaitUntil([&] { return done.load() == o.streams; }, absl::Seconds(60));
  for (const std::string& q : queues) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(30)));
    v1::DeleteQueueRequest req;
    req.set_name(q);
    v1::DeleteQueueResponse resp;
    stubs[0]->DeleteQueue(&ctx, req, &resp);
  }

  Summary s;
  s.Set("tool", "gateway").Set("mode", "streams");
  if (!o.label.empty()) s.Set("label", o.label);
  s.Set("streams", o.streams).Set("subscribed", subscribed.load());
  s.Set("open_s", absl::ToDoubleSeconds(open_time), 2);
  s.Set("duration_s", absl::ToDoubleSeconds(elapsed), 1);
  if (o.trickle > 0) {
    std::lock_guard<std::mutex> lock(lat.mu);
    s.Set("trickle_per_s", o.trickle, 1)
        .Set("sent", trickle.sent())
        .Set("trickle_failed", trickle.failed())
        .Set("delivered", static_cast<int64_t>(lat.lat.size()));
    s.Set("delivery_p50_us", lat.lat.PercentileUs(0.5), 1)
        .Set("delivery_p99_us", lat.lat.PercentileUs(0.99), 1);
  }
  if (gateway.enabled()) {
    s.Set("gw_cpu_pct",
          100.0 * gateway.cpu_seconds() / absl::ToDoubleSeconds(elapsed), 2);
    s.Set("gw_rss_before_mb", rss_before, 1);
    s.Set("gw_rss_open_mb", rss_open, 1);
    s.Set("gw_rss_peak_mb", gateway.peak_rss_mb(), 1);
  }
  s.Print();
  return 0;
}

int Main(int argc, char** argv) {
  Flags f(argc, argv, kUsage);
  Options o;
  o.server = f.Str("server", "127.0.0.1:50051");
  o.queue = f.Str("queue", "amqpgw-bench");
  o.n = f.Int("n", 100000);
  o.size = f.Int("size", 100);
  o.persistent = !f.Bool("transient", false);
  o.concurrency = f.Int("concurrency", 1);
  o.batch = f.Int("batch", 256);
  o.prefetch = f.Int("prefetch", 1000);
  o.ack = f.Str("ack", "auto");
  o.ack_batch = f.Int("ack_batch", std::max<int64_t>(1, o.prefetch / 4));
  o.max_batch = f.Int("max_batch", 0);
  o.fill = f.Bool("fill", false);
  o.purge = f.Bool("purge", false);
  o.warmup = f.Int("warmup", 0);
  o.streams = f.Int("streams", 100);
  o.duration = f.Double("duration", 60);
  o.gateway_pid = static_cast<pid_t>(f.Int("gateway_pid", 0));
  o.broker_pid = static_cast<pid_t>(f.Int("broker_pid", 0));
  o.label = f.Str("label", "");
  o.pause_us = f.Int("pause_us", 0);
  o.streams_given = f.Has("streams");
  o.max_in_flight = f.Int("max_in_flight", 256);
  o.client_window = f.Int("client_window", 0);
  o.answers_per_response = f.Int("answers_per_response", 1);
  o.trickle = f.Double("trickle", 0);
  f.CheckAllUsed();
  if (o.ack != "auto" && o.ack != "client" && o.ack != "none") {
    f.Die("--ack: auto, client or none");
  }
  if (o.n <= 0 || o.concurrency <= 0 || o.batch <= 0 || o.batch > 10000 ||
      o.prefetch <= 0 || o.prefetch > 65535 || o.ack_batch <= 0 ||
      o.streams <= 0 || o.max_batch < 0 || o.max_batch > 65535) {
    f.Die(
        "-n, --concurrency, --batch (<= 10000), --prefetch, --ack_batch "
        "and --streams must be positive; --max_batch 0..65535");
  }
  const std::string& mode = f.mode();
  if (mode == "publish" || mode == "publish-batch" || mode == "publish-sync") {
    return RunPublish(o, mode);
  }
  if (mode == "publish-stream") {
    if (o.max_in_flight <= 0) f.Die("--max_in_flight must be positive");
    if (o.client_window < 0) f.Die("--client_window must be 0 or more");
    if (o.answers_per_response < 0 || o.answers_per_response > 1024) {
      f.Die("--answers_per_response: 0..1024");
    }
    return RunPublishStream(o);
  }
  if (mode == "status-sync") return RunStatusSync(o);
  if (mode == "stream") return RunStream(o);
  if (mode == "subscribe") return RunSubscribe(o);
  if (mode == "streams") return RunStreams(o);
  f.Die("unknown mode " + mode);
}

}  // namespace
}  // namespace amqpgw::bench

int main(int argc, char** argv) {
  // As amqpgwd does: no debug-mode deadlock detection in Debian's Abseil
  // (gRPC's locks are absl::Mutex), so the load generator stays cheap.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return amqpgw::bench::Main(argc, argv);
}
