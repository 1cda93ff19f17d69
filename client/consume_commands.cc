// consume (StreamMessages, printing each delivery as it arrives) and ack.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/delivery_format.h"
#include "client/progress.h"
#include "client/values.h"

namespace amqpgw::cli {
namespace {

// Most deliveries per StreamMessages response that consume asks for.
constexpr uint32_t kMaxBatch = 256;

// Takes SIGINT and SIGTERM for the whole process on a thread of its own
// (sigwait): the first calls `on_interrupt`, a second one exits at once
// (130). Must be constructed before any other thread exists (gRPC's
// included) so that every thread inherits the blocked mask. Owned by the
// consume command on the main thread.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void()> on_interrupt)
      : on_interrupt_(std::move(on_interrupt)) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);  // wakes the watcher to stop
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] { Watch(); });
  }
  ~SignalWatcher() {
    stopping_.store(true);
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  bool interrupted() const { return interrupted_.load(); }

 private:
  void Watch() {
    for (;;) {
      int sig = 0;
      if (sigwait(&set_, &sig) != 0) continue;
      if (sig == SIGUSR1) {
        if (stopping_.load()) return;
        continue;
      }
      if (interrupted_.exchange(true)) _exit(130);
      on_interrupt_();
    }
  }

  const std::function<void()> on_interrupt_;
  sigset_t set_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> interrupted_{false};
  std::thread thread_;
};

// Acks the deliveries of one CLIENT-mode subscription from a thread of its
// own, batching whatever accumulated while the previous Ack was in flight.
// Add() and Stop() are called by the reading thread. The stub and client
// must outlive the Acker.
class Acker {
 public:
  Acker(v1::Gateway::Stub& stub, const Client& client,
        std::string subscription_id, std::function<void()> on_error)
      : stub_(stub),
        client_(client),
        subscription_id_(std::move(subscription_id)),
        on_error_(std::move(on_error)),
        thread_([this] { Run(); }) {}
  ~Acker() { Stop(); }

  void Add(uint64_t id) {
    absl::MutexLock lock(&mu_);
    pending_.push_back(id);
  }
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }
  uint64_t acked() const { return acked_.load(); }
  ::grpc::Status error() {
    absl::MutexLock lock(&mu_);
    return error_;
  }

 private:
  void Run() {
    for (;;) {
      v1::AckRequest req;
      req.set_subscription_id(subscription_id_);
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Acker* a) { return a->stop_ || !a->pending_.empty(); }, this));
        if (stop_) return;
        while (!pending_.empty() && req.delivery_ids_size() < 65535) {
          req.add_delivery_ids(pending_.front());
          pending_.pop_front();
        }
      }
      v1::AckResponse resp;
      auto ctx = client_.NewContext();
      ::grpc::Status s = stub_.Ack(ctx.get(), req, &resp);
      if (!s.ok()) {
        {
          absl::MutexLock lock(&mu_);
          error_ = s;
        }
        on_error_();
        return;
      }
      acked_ += resp.applied_count();
    }
  }

  v1::Gateway::Stub& stub_;
  const Client& client_;
  const std::string subscription_id_;
  const std::function<void()> on_error_;
  absl::Mutex mu_;
  std::deque<uint64_t> pending_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  ::grpc::Status error_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> acked_{0};
  std::thread thread_;
};

int RunConsume(const Command& cmd, const ParsedArgs& args, Client& client) {
  v1::StreamMessagesRequest req;
  req.set_queue(args.positionals[0]);
  if (args.Has("max")) {
    absl::StatusOr<uint64_t> max = ParseCount(args.Get("max"), UINT64_MAX);
    if (!max.ok())
      return UsageError(cmd, absl::StrCat("--max: ", max.status().message()));
    req.set_max_messages(*max);
  }
  if (args.Has("prefetch")) {
    absl::StatusOr<uint64_t> prefetch = ParseCount(args.Get("prefetch"), 65535);
    if (!prefetch.ok() || *prefetch == 0) {
      return UsageError(cmd, absl::StrCat("--prefetch: '", args.Get("prefetch"),
                                          "' is not 1..65535"));
    }
    req.set_prefetch(static_cast<uint32_t>(*prefetch));
  }
  std::string ack = absl::AsciiStrToLower(args.Get("ack", "auto"));
  if (ack == "auto") {
    req.set_ack_mode(v1::StreamMessagesRequest::AUTO);
  } else if (ack == "client") {
    req.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  } else if (ack == "none") {
    req.set_ack_mode(v1::StreamMessagesRequest::NONE);
  } else {
    return UsageError(cmd, absl::StrCat("--ack: '", args.Get("ack"),
                                        "' is not auto, client or none"));
  }
  req.set_consumer_tag(args.Get("consumer-tag"));
  req.set_exclusive(args.GetBool("exclusive"));
  // Deliveries that wait together come in one response (printed the same
  // way): less CPU per message on both sides. A gateway older than
  // max_batch ignores it and sends `delivery` events, handled alike.
  req.set_max_batch(kMaxBatch);
  absl::Status st =
      ParseFieldArgs(args.GetAll("arg"), "arg", req.mutable_arguments());
  if (!st.ok()) return UsageError(cmd, st.message());
  const bool json = client.options().json;
  const bool text = args.GetBool("text");
  const bool client_acks = req.ack_mode() == v1::StreamMessagesRequest::CLIENT;

  // Before the first gRPC call, so that gRPC's threads never take SIGINT.
  std::unique_ptr<::grpc::ClientContext> ctx = client.NewStreamContext();
  ::grpc::ClientContext* raw_ctx = ctx.get();
  SignalWatcher signals([raw_ctx] { raw_ctx->TryCancel(); });

  absl::Time start = absl::Now();
  uint64_t received = 0;
  bool output_failed = false;
  std::unique_ptr<Acker> acker;
  auto reader = client.gateway().StreamMessages(ctx.get(), req);
  v1::StreamMessagesResponse ev;
  bool subscribed = false;
  while (reader->Read(&ev)) {
    if (ev.has_subscribed()) {
      subscribed = true;
      const v1::Subscribed& s = ev.subscribed();
      std::fprintf(
          stderr,
          "subscribed to %s (subscription %s, consumer tag %s, "
          "prefetch %u, ack %s)%s\n",
          s.queue().c_str(), s.subscription_id().c_str(),
          s.consumer_tag().c_str(), s.prefetch(),
          v1::StreamMessagesRequest::AckMode_Name(s.ack_mode()).c_str(),
          isatty(STDERR_FILENO) ? "; Ctrl-C to stop" : "");
      if (client_acks) {
        acker = std::make_unique<Acker>(client.gateway(), client,
                                        s.subscription_id(),
                                        [raw_ctx] { raw_ctx->TryCancel(); });
      }
    } else if (ev.has_delivery() || ev.has_batch()) {
      if (ev.has_delivery()) {  // from a gateway without max_batch
        v1::Delivery lone = std::move(*ev.mutable_delivery());
        *ev.mutable_batch()->add_deliveries() = std::move(lone);
      }
      std::string lines;
      for (const v1::Delivery& d : ev.batch().deliveries()) {
        lines += json ? JsonDelivery(d, text) : HumanDelivery(d);
        lines += '\n';
      }
      if (std::fwrite(lines.data(), 1, lines.size(), stdout) != lines.size() ||
          std::fflush(stdout) != 0) {
        // A closed pipe (consume | head): stop; with --ack client the
        // unprinted messages go back to the queue.
        output_failed = true;
        ctx->TryCancel();
        break;
      }
      for (const v1::Delivery& d : ev.batch().deliveries()) {
        ++received;
        if (acker != nullptr) acker->Add(d.delivery_id());
      }
    } else if (ev.has_status()) {
      std::fprintf(stderr, "stream %s: %s\n",
                   v1::StreamStatus::Kind_Name(ev.status().kind()).c_str(),
                   ev.status().message().c_str());
    }
  }
  ::grpc::Status status = reader->Finish();
  ::grpc::Status ack_error;
  uint64_t acked = 0;
  if (acker != nullptr) {
    acker->Stop();
    ack_error = acker->error();
    acked = acker->acked();
  }
  const bool interrupted = signals.interrupted();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  // A stream refused before `subscribed` (no such queue, no daemon) ends
  // with the error alone: "received 0 messages" would suggest it ran.
  if (subscribed || interrupted) {
    std::string summary = absl::StrCat(
        interrupted ? "interrupted: " : "", "received ",
        Plural(static_cast<int64_t>(received), "message"), " from ",
        req.queue(), " in ", absl::StrFormat("%.2f", seconds), " s");
    if (client_acks)
      absl::StrAppend(&summary, " (acked ", WithThousands(acked), ")");
    std::fprintf(stderr, "%s\n", summary.c_str());
  }
  if (!ack_error.ok()) {
    return ReportRpcError(client, ack_error, "ack");
  }
  if (status.ok()) return kExitOk;
  if (status.error_code() == ::grpc::StatusCode::CANCELLED &&
      (interrupted || output_failed)) {
    return kExitOk;
  }
  return ReportRpcError(client, status);
}

int RunAck(const Command& cmd, const ParsedArgs& args, Client& client) {
  v1::AckRequest req;
  req.set_subscription_id(args.positionals[0]);
  for (size_t i = 1; i < args.positionals.size(); ++i) {
    absl::StatusOr<uint64_t> id = ParseCount(args.positionals[i], UINT64_MAX);
    if (!id.ok() || *id == 0) {
      return UsageError(cmd,
                        absl::StrCat("'", args.positionals[i],
                                     "' is not a delivery id (1, 2, ...)"));
    }
    req.add_delivery_ids(*id);
  }
  int actions = args.GetBool("requeue") + args.GetBool("reject");
  if (actions > 1) {
    return UsageError(cmd, "--requeue and --reject exclude each other");
  }
  req.set_action(args.GetBool("requeue")  ? v1::AckRequest::REQUEUE
                 : args.GetBool("reject") ? v1::AckRequest::REJECT
                                          : v1::AckRequest::ACK);
  v1::AckResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().Ack(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  if (client.options().json) {
    PrintJson(resp);
    return kExitOk;
  }
  std::printf(
      "%s applied to %s",
      absl::AsciiStrToLower(v1::AckRequest::Action_Name(req.action())).c_str(),
      Plural(resp.applied_count(), "delivery", "deliveries").c_str());
  if (resp.stale_ids_size() > 0) {
    std::printf(
        "; stale (delivered before a reconnect, or already "
        "acknowledged): %s",
        absl::StrJoin(resp.stale_ids(), " ").c_str());
  }
  std::printf("\n");
  return kExitOk;
}

}  // namespace

std::vector<Command> ConsumeCommands() {
  std::vector<Command> out;
  out.push_back({
      "consume",
      "QUEUE",
      "print messages as they arrive",
      "Reads QUEUE as a stream and prints each delivery as it arrives, one "
      "line per message on stdout: delivery id, routing key, the properties "
      "that are set, headers, then ' | ' and the body. Bodies that are "
      "printable UTF-8 are shown as they are; UTF-8 with control characters "
      "is shown quoted with escapes (\\n, \\u001b); anything else as "
      "'<binary N bytes> base64:...'.\n\n"
      "With --json each delivery is one JSON object per line (the Delivery "
      "message with proto field names, default values left out) whose "
      "\"body\" is base64 with \"body_encoding\": \"base64\", or the text "
      "itself with \"body_encoding\": \"text\" when --text is given and the "
      "body is valid UTF-8.\n\n"
      "Acknowledgements: auto (the gateway acks each message once it handed "
      "it to this stream), client (amqpgw acks each message after writing it "
      "to stdout: at-least-once even through a pipe), none (at-most-once). "
      "The stream ends after --max messages (exit 0); Ctrl-C (SIGINT) or "
      "SIGTERM cancels it cleanly, prints the summary and exits 0; unacked "
      "messages go back to the queue. Progress and the summary go to stderr, "
      "so stdout holds only deliveries. There is no deadline unless "
      "--timeout is given.",
      {{"max", "N", "stop after N messages (default: run until Ctrl-C)"},
       {"prefetch", "N", "messages in flight, 1..65535 (default 100)"},
       {"ack", "MODE", "auto (default), client or none"},
       {"text", "",
        "--json: bodies that are valid UTF-8 as text instead of base64"},
       {"consumer-tag", "TAG", "the consumer tag the broker shows"},
       {"exclusive", "", "be the queue's only consumer"},
       {"arg", "KEY[:TYPE]=VALUE",
        "a consumer argument (repeatable), e.g. x-priority:int=10, "
        "x-stream-offset=first",
        true}},
      {"amqpgw consume orders",
       "amqpgw consume orders --max 10 --json --text | jq .body",
       "amqpgw consume orders --ack client --prefetch 10 > orders.log"},
      1,
      1,
      RunConsume,
  });
  out.push_back({
      "ack",
      "SUBSCRIPTION_ID DELIVERY_ID...",
      "ack deliveries of a CLIENT-mode stream",
      "Acknowledges deliveries of a running 'amqpgw consume QUEUE --ack "
      "client' (or another CLIENT-mode stream): its subscription id is "
      "printed on stderr when it starts, 'subscribed to QUEUE (subscription "
      "ID, ...)'. ACK by default, or --requeue / --reject. Ids that can no "
      "longer be acknowledged (delivered before a reconnect, or already "
      "acknowledged) are reported as stale, not as an error.",
      {{"requeue", "", "basic.nack requeue=true: deliver the messages again"},
       {"reject", "",
        "basic.nack requeue=false: dead-letter (or drop) the messages"}},
      {"amqpgw ack host:50051/3kq8b2 1 2 3",
       "amqpgw ack host:50051/3kq8b2 7 --requeue"},
      2,
      SIZE_MAX,
      RunAck,
  });
  return out;
}

}  // namespace amqpgw::cli
