// consume (Subscribe with --ack client, the default; StreamMessages with
// --ack auto or none), printing each delivery as it arrives, and ack.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

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

// Writes a batch's lines to stdout with write(2), so that what reached the
// file or pipe is known exactly. Returns how many deliveries' lines were
// written whole; `ok` is false when stdout is gone (a closed pipe: EPIPE,
// SIGPIPE being ignored) or failing.
size_t PrintBatch(const v1::DeliveryBatch& batch, bool json, bool text,
                  bool* ok) {
  std::string lines;
  std::vector<size_t> ends;  // offset just past each delivery's line
  for (const v1::Delivery& d : batch.deliveries()) {
    lines += json ? JsonDelivery(d, text) : HumanDelivery(d);
    lines += '\n';
    ends.push_back(lines.size());
  }
  *ok = std::fflush(stdout) == 0;  // anything stdio still holds goes first
  size_t written = 0;
  while (*ok && written < lines.size()) {
    ssize_t n =
        ::write(STDOUT_FILENO, lines.data() + written, lines.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *ok = false;
      break;
    }
    written += static_cast<size_t>(n);
  }
  return std::upper_bound(ends.begin(), ends.end(), written) - ends.begin();
}

// The line on stderr when a stream (Subscribe or StreamMessages) has
// subscribed.
void PrintSubscribed(const v1::Subscribed& s) {
  std::fprintf(stderr,
               "subscribed to %s (subscription %s, consumer tag %s, "
               "prefetch %u, ack %s)%s\n",
               s.queue().c_str(), s.subscription_id().c_str(),
               s.consumer_tag().c_str(), s.prefetch(),
               v1::StreamMessagesRequest::AckMode_Name(s.ack_mode()).c_str(),
               isatty(STDERR_FILENO) ? "; Ctrl-C to stop" : "");
}

// consume with --ack client (the default): Subscribe, each batch acked on
// the stream only after its lines were written and flushed to stdout. A
// closed stdout (consume | head) or Ctrl-C half-closes the stream: the
// gateway applies the acks sent before and requeues everything else at once
// (drain_timeout 0: this process sends no acks after its half-close).
int RunSubscribe(const v1::SubscribeStart& start, bool json, bool text,
                 Client& client) {
  std::unique_ptr<::grpc::ClientContext> ctx = client.NewStreamContext();
  using Stream =
      ::grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>;
  // Writes (acks) and the half-close come from two threads (this one and
  // the signal watcher's).
  absl::Mutex write_mu;
  bool closed = false;    // guarded by write_mu
  Stream* raw = nullptr;  // guarded by write_mu
  auto half_close = [&write_mu, &closed, &raw] {
    absl::MutexLock lock(&write_mu);
    if (closed || raw == nullptr) return;
    closed = true;
    raw->WritesDone();
  };
  auto write = [&write_mu, &closed, &raw](const v1::SubscribeRequest& r) {
    absl::MutexLock lock(&write_mu);
    return !closed && raw != nullptr && raw->Write(r);
  };
  // Before the first gRPC call, so that gRPC's threads never take SIGINT.
  ::grpc::ClientContext* raw_ctx = ctx.get();
  SignalWatcher signals([&half_close, &write_mu, &raw, raw_ctx] {
    bool started;
    {
      absl::MutexLock lock(&write_mu);
      started = raw != nullptr;
    }
    if (started) {
      half_close();
    } else {
      raw_ctx->TryCancel();
    }
  });
  auto stream = client.gateway().Subscribe(ctx.get());
  {
    absl::MutexLock lock(&write_mu);
    raw = stream.get();
  }

  absl::Time began = absl::Now();
  v1::SubscribeRequest first;
  *first.mutable_start() = start;
  first.mutable_start()->mutable_drain_timeout()->set_seconds(0);
  write(first);
  uint64_t printed = 0;
  uint64_t acked = 0;
  bool output_failed = false;
  bool subscribed = false;
  std::optional<v1::SubscribeSummary> summary;
  v1::SubscribeResponse ev;
  while (stream->Read(&ev)) {
    if (ev.has_subscribed()) {
      subscribed = true;
      PrintSubscribed(ev.subscribed());
    } else if (ev.has_batch()) {
      // After a half-close (Ctrl-C, or stdout gone) nothing more is printed
      // or acked: what was already on its way is requeued.
      if (output_failed || signals.interrupted()) continue;
      bool ok;
      size_t whole = PrintBatch(ev.batch(), json, text, &ok);
      // Ack exactly the deliveries whose lines reached stdout whole.
      printed += whole;
      if (whole > 0) {
        v1::SubscribeRequest ack;
        for (size_t i = 0; i < whole; ++i) {
          ack.mutable_ack()->add_delivery_ids(
              ev.batch().deliveries(static_cast<int>(i)).delivery_id());
        }
        write(ack);
      }
      if (!ok) {
        output_failed = true;
        half_close();
      }
    } else if (ev.has_ack()) {
      acked += ev.ack().applied_ids_size();
    } else if (ev.has_summary()) {
      summary = ev.summary();
    } else if (ev.has_status()) {
      std::fprintf(stderr, "stream %s: %s\n",
                   v1::StreamStatus::Kind_Name(ev.status().kind()).c_str(),
                   ev.status().message().c_str());
    }
  }
  ::grpc::Status status = stream->Finish();
  const bool interrupted = signals.interrupted();
  if (summary.has_value()) acked = summary->acked();
  double seconds = absl::ToDoubleSeconds(absl::Now() - began);
  if (subscribed || interrupted) {
    std::string line =
        absl::StrCat(interrupted ? "interrupted: " : "",
                     output_failed ? "stdout closed: " : "", "received ",
                     Plural(static_cast<int64_t>(printed), "message"), " from ",
                     start.queue(), " in ", absl::StrFormat("%.2f", seconds),
                     " s (acked ", WithThousands(acked), ")");
    if (summary.has_value() && summary->requeued() > 0) {
      absl::StrAppend(&line, "; ", WithThousands(summary->requeued()),
                      " went back to the queue");
    }
    std::fprintf(stderr, "%s\n", line.c_str());
    if (output_failed) {
      std::fprintf(stderr,
                   "amqpgw: stdout was closed after %s lines; each was acked "
                   "once written and flushed, so lines still in the pipe's "
                   "buffer that the reader never read are acked too: use "
                   "--max N to take exactly N\n",
                   WithThousands(printed).c_str());
    }
  }
  if (status.ok()) return kExitOk;
  if (status.error_code() == ::grpc::StatusCode::CANCELLED && interrupted) {
    return kExitOk;
  }
  return ReportRpcError(client, status);
}

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
  std::string ack = absl::AsciiStrToLower(args.Get("ack", "client"));
  if (ack == "auto") {
    req.set_ack_mode(v1::StreamMessagesRequest::AUTO);
  } else if (ack == "client" || ack == "manual") {
    req.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  } else if (ack == "none") {
    req.set_ack_mode(v1::StreamMessagesRequest::NONE);
  } else {
    return UsageError(cmd, absl::StrCat("--ack: '", args.Get("ack"),
                                        "' is not auto, client, manual or "
                                        "none"));
  }
  if (args.Has("retry-policy")) {
    absl::StatusOr<v1::RetryPolicy> policy =
        ParseRetryPolicy(args.Get("retry-policy"));
    if (!policy.ok()) {
      return UsageError(
          cmd, absl::StrCat("--retry-policy: ", policy.status().message()));
    }
    *req.mutable_retry_policy() = *std::move(policy);
  }
  if (args.Has("dead-letter")) {
    *req.mutable_dead_letter() = ParseDeadLetter(args.Get("dead-letter"));
  }
  if (args.Has("offset")) {
    absl::StatusOr<v1::StreamOffset> offset =
        ParseStreamOffset(args.Get("offset"));
    if (!offset.ok()) {
      return UsageError(cmd,
                        absl::StrCat("--offset: ", offset.status().message()));
    }
    *req.mutable_offset() = *std::move(offset);
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
  if (req.ack_mode() == v1::StreamMessagesRequest::CLIENT && ack != "manual") {
    v1::SubscribeStart start;
    start.set_queue(req.queue());
    start.set_prefetch(req.prefetch());
    start.set_max_messages(req.max_messages());
    start.set_consumer_tag(req.consumer_tag());
    start.set_exclusive(req.exclusive());
    start.set_max_batch(req.max_batch());
    *start.mutable_arguments() = req.arguments();
    if (req.has_retry_policy()) {
      *start.mutable_retry_policy() = req.retry_policy();
    }
    if (req.has_dead_letter()) *start.mutable_dead_letter() = req.dead_letter();
    if (req.has_offset()) *start.mutable_offset() = req.offset();
    return RunSubscribe(start, json, text, client);
  }
  // manual: StreamMessages in CLIENT mode, acked with 'amqpgw ack'.

  // Before the first gRPC call, so that gRPC's threads never take SIGINT.
  std::unique_ptr<::grpc::ClientContext> ctx = client.NewStreamContext();
  ::grpc::ClientContext* raw_ctx = ctx.get();
  SignalWatcher signals([raw_ctx] { raw_ctx->TryCancel(); });

  absl::Time start = absl::Now();
  uint64_t received = 0;
  bool output_failed = false;
  auto reader = client.gateway().StreamMessages(ctx.get(), req);
  v1::StreamMessagesResponse ev;
  bool subscribed = false;
  while (reader->Read(&ev)) {
    if (ev.has_subscribed()) {
      subscribed = true;
      PrintSubscribed(ev.subscribed());
    } else if (ev.has_delivery() || ev.has_batch()) {
      if (ev.has_delivery()) {  // from a gateway without max_batch
        v1::Delivery lone = std::move(*ev.mutable_delivery());
        *ev.mutable_batch()->add_deliveries() = std::move(lone);
      }
      bool ok;
      received += PrintBatch(ev.batch(), json, text, &ok);
      if (!ok) {
        // A closed pipe (consume | head): stop.
        output_failed = true;
        ctx->TryCancel();
        break;
      }
    } else if (ev.has_status()) {
      std::fprintf(stderr, "stream %s: %s\n",
                   v1::StreamStatus::Kind_Name(ev.status().kind()).c_str(),
                   ev.status().message().c_str());
    }
  }
  ::grpc::Status status = reader->Finish();
  const bool interrupted = signals.interrupted();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  // A stream refused before `subscribed` (no such queue, no daemon) ends
  // with the error alone: "received 0 messages" would suggest it ran.
  if (subscribed || interrupted) {
    std::string summary = absl::StrCat(
        interrupted ? "interrupted: " : "", "received ",
        Plural(static_cast<int64_t>(received), "message"), " from ",
        req.queue(), " in ", absl::StrFormat("%.2f", seconds), " s");
    std::fprintf(stderr, "%s\n", summary.c_str());
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
  int actions =
      args.GetBool("requeue") + args.GetBool("reject") + args.Has("retry");
  if (actions > 1) {
    return UsageError(cmd,
                      "--requeue, --reject and --retry exclude each other");
  }
  req.set_action(args.GetBool("requeue")  ? v1::AckRequest::REQUEUE
                 : args.GetBool("reject") ? v1::AckRequest::REJECT
                 : args.Has("retry")      ? v1::AckRequest::RETRY
                                          : v1::AckRequest::ACK);
  if (args.Has("retry") && args.Get("retry") != "policy") {
    absl::StatusOr<absl::Duration> delay = ParseDurationArg(args.Get("retry"));
    if (!delay.ok()) {
      return UsageError(cmd,
                        absl::StrCat("--retry: ", delay.status().message()));
    }
    *req.mutable_retry_delay() = ToProtoDuration(*delay);
  }
  req.set_error(args.Get("error"));
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
      "Acknowledgements: client (the default; the Subscribe RPC): amqpgw "
      "acks each message on the stream only after its line was written to "
      "stdout and flushed; everything else goes back to the queue when it "
      "stops. auto (StreamMessages AUTO: the gateway acks what its transport "
      "sent, so messages still in transit when amqpgw stops are lost) and "
      "none (at-most-once) are faster and weaker.\n\n"
      "A pipe: a line written and flushed into a pipe counts as printed and "
      "is acked, but the reader may exit before reading it (consume | head "
      "-5 acks more than 5). When stdout closes (EPIPE) amqpgw stops, acks "
      "nothing more, returns the rest to the queue and says on stderr how "
      "many lines it printed and acked. To take exactly N messages use --max "
      "N: it acks exactly N.\n\n"
      "manual (StreamMessages CLIENT; nobody acks here: ack, requeue, "
      "reject or retry each delivery with 'amqpgw ack SUBSCRIPTION_ID "
      "ID...').\n\n"
      "With --retry-policy (client or manual), a requeue is a delayed retry "
      "through a delay queue, and at max attempts the message goes to "
      "--dead-letter (or is rejected); see docs/failure-behaviour.md.\n\n"
      "Stream queues: --offset says where to start (first, last, next, an "
      "absolute offset, or an RFC 3339 time); each line shows the message's "
      "offset=N. After a reconnect the gateway goes on after the last "
      "message amqpgw had, not from --offset again; a new 'amqpgw consume' "
      "starts from --offset (the broker keeps no position for it).\n\n"
      "The stream ends after --max messages (exit 0); Ctrl-C (SIGINT) or "
      "SIGTERM stops it cleanly, prints the summary and exits 0; unacked "
      "messages go back to the queue. Progress and the summary go to stderr, "
      "so stdout holds only deliveries. There is no deadline unless "
      "--timeout is given.",
      {{"max", "N", "stop after N messages (default: run until Ctrl-C)"},
       {"prefetch", "N", "messages in flight, 1..65535 (default 100)"},
       {"ack", "MODE", "client (default), auto, manual or none"},
       {"retry-policy", "POLICY",
        "client/manual: max=N,backoff=INITIAL[..MAX],multiplier=X,jitter=X "
        "(any of them; e.g. max=5,backoff=1s..1m: 1s, 2s, 4s, ... at most "
        "1m, 5 deliveries at most)"},
       {"dead-letter", "EXCHANGE[:KEY]",
        "with --retry-policy max=N: where messages go after N deliveries "
        "(KEY: their own routing key when left out; ':QUEUE' is a queue "
        "through the default exchange)"},
       {"text", "",
        "--json: bodies that are valid UTF-8 as text instead of base64"},
       {"offset", "WHERE",
        "stream queues: first, last, next, an offset N, or an RFC 3339 time "
        "(e.g. 2026-12-06T20:00:00Z); wins over --arg x-stream-offset"},
       {"consumer-tag", "TAG", "the consumer tag the broker shows"},
       {"exclusive", "", "be the queue's only consumer"},
       {"arg", "KEY[:TYPE]=VALUE",
        "a consumer argument (repeatable), e.g. x-priority:int=10", true}},
      {"amqpgw consume orders",
       "amqpgw consume orders --max 10 --json --text | jq .body",
       "amqpgw consume orders --prefetch 10 > orders.log",
       "amqpgw consume events --offset first --max 100",
       "amqpgw consume events --offset 2026-12-06T20:00:00Z",
       "amqpgw consume orders --ack manual --retry-policy "
       "'max=5,backoff=1s..1m' --dead-letter :orders.dead"},
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
      "ID, ...)'. ACK by default, or --requeue / --reject / --retry DELAY "
      "(redelivered after DELAY through a delay queue; answered once the "
      "copy is confirmed; 'policy' uses the stream's --retry-policy). Ids "
      "that can no "
      "longer be acknowledged (delivered before a reconnect, or already "
      "acknowledged) are reported as stale, not as an error.",
      {{"requeue", "", "basic.nack requeue=true: deliver the messages again"},
       {"reject", "",
        "basic.nack requeue=false: dead-letter (or drop) the messages"},
       {"retry", "DELAY",
        "deliver the messages again after DELAY (0 .. 24h, e.g. 30s, "
        "500ms), or 'policy': the stream's retry policy's delay"},
       {"error", "TEXT",
        "why processing failed (at most 1024 bytes): a message dead-lettered "
        "by this ack carries it in the header x-amqpgw-error"}},
      {"amqpgw ack host:50051/3kq8b2 1 2 3",
       "amqpgw ack host:50051/3kq8b2 7 --requeue",
       "amqpgw ack host:50051/3kq8b2 7 --retry 30s --error 'timeout'"},
      2,
      SIZE_MAX,
      RunAck,
  });
  return out;
}

}  // namespace amqpgw::cli
