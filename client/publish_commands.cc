// publish and publish-batch: one confirmed message, or many (lines of a
// file or stdin, or --count copies) on one PublishStream.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/hints.h"
#include "client/progress.h"
#include "client/values.h"

namespace amqpgw::cli {
namespace {

// --max-in-flight's largest value (the gateway lowers it further to its
// --confirm_window).
constexpr uint64_t kMaxInFlight = 1 << 20;
// Failures listed one by one; the rest are counted.
constexpr size_t kListedFailures = 10;
constexpr size_t kJsonFailures = 100;

struct FileCloser {
  void operator()(FILE* f) const {
    if (f != nullptr && f != stdin) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

// The exchange, routing key and properties every message of this run gets.
absl::Status BuildTemplate(const ParsedArgs& args, v1::PublishRequest* out) {
  out->set_exchange(args.Get("exchange"));
  out->set_routing_key(args.positionals[0]);
  out->set_allow_unroutable(args.GetBool("allow-unroutable"));
  v1::MessageProperties* p = out->mutable_properties();
  if (args.GetBool("persistent") && args.GetBool("transient")) {
    return absl::InvalidArgumentError(
        "--persistent and --transient exclude each other");
  }
  p->set_delivery_mode(args.GetBool("transient") ? v1::TRANSIENT
                                                 : v1::PERSISTENT);
  if (args.Has("priority")) {
    absl::StatusOr<uint64_t> prio = ParseCount(args.Get("priority"), 255);
    if (!prio.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--priority: ", prio.status().message()));
    }
    p->set_priority(static_cast<uint32_t>(*prio));
  }
  if (args.Has("ttl")) {
    absl::StatusOr<absl::Duration> ttl = ParseDurationArg(args.Get("ttl"));
    if (!ttl.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ttl: ", ttl.status().message()));
    }
    int64_t ms = absl::ToInt64Milliseconds(*ttl);
    p->mutable_expiration()->set_seconds(ms / 1000);
    p->mutable_expiration()->set_nanos(static_cast<int32_t>(ms % 1000) *
                                       1000000);
  }
  if (args.Has("timestamp")) {
    std::string text = args.Get("timestamp");
    if (text == "now") {
      p->mutable_timestamp()->set_seconds(absl::ToUnixSeconds(absl::Now()));
    } else {
      absl::StatusOr<NamedField> f = ParseFieldArg("t:timestamp=" + text);
      if (!f.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--timestamp: '", text, "' is not now, RFC 3339 or Unix seconds"));
      }
      *p->mutable_timestamp() = f->value.timestamp_value();
    }
  }
  p->set_content_type(args.Get("content-type"));
  p->set_content_encoding(args.Get("content-encoding"));
  p->set_correlation_id(args.Get("correlation-id"));
  p->set_reply_to(args.Get("reply-to"));
  p->set_message_id(args.Get("message-id"));
  p->set_type(args.Get("type"));
  p->set_app_id(args.Get("app-id"));
  p->set_user_id(args.Get("user-id"));
  return ParseFieldArgs(args.GetAll("header"), "header", p->mutable_headers());
}

absl::StatusOr<FilePtr> OpenInput(const ParsedArgs& args) {
  std::string path = args.Get("file", "-");
  if (path == "-") return FilePtr(stdin);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--file: cannot open '", path, "': ", std::strerror(errno)));
  }
  return FilePtr(f);
}

// Lines in a regular file (a last line without '\n' counts); -1 otherwise.
int64_t CountLines(FILE* f) {
  struct stat st;
  if (f == stdin || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    return -1;
  }
  int64_t lines = 0;
  char buf[1 << 16];
  size_t n;
  char last = '\n';
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    for (size_t i = 0; i < n; ++i) lines += buf[i] == '\n';
    last = buf[n - 1];
  }
  if (last != '\n') ++lines;
  std::rewind(f);
  return lines;
}

bool ReadAll(FILE* f, std::string* out) {
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out->append(buf, n);
  return !std::ferror(f);
}

// Sends messages on one PublishStream and keeps the tally. The main thread
// writes (gRPC's flow control holds it once --max-in-flight messages are
// unanswered); a reader thread of its own takes the answers, in any order,
// counts them and draws the progress bar (Progress is used by that thread
// only, until Close() joins it).
class StreamSender {
 public:
  StreamSender(Client& client, const v1::PublishRequest& message_template,
               uint32_t max_in_flight, bool inputs_ready, Progress* progress)
      : client_(client),
        inputs_ready_(inputs_ready),
        progress_(progress),
        start_(absl::Now()),
        ctx_(client.NewStreamContext()),
        stream_(client.gateway().PublishStream(ctx_.get())) {
    *request_.mutable_message() = message_template;
    request_.set_max_in_flight(max_in_flight);
    // One response may carry every answer of a confirm.
    request_.set_max_answers_per_response(kAnswersPerResponse);
    reader_ = std::thread([this] { ReadAnswers(); });
  }
  ~StreamSender() {
    if (reader_.joinable()) {
      ctx_->TryCancel();
      reader_.join();
    }
  }

  // Writes one message (numbered from 1, the line number with --lines).
  // False once the stream is broken.
  bool Add(std::string body) {
    request_.mutable_message()->set_body(std::move(body));
    request_.set_sequence(static_cast<uint64_t>(written_ + 1));
    ::grpc::WriteOptions options;
    // With the next message at hand, let gRPC gather several in one frame
    // and system call; every 64th, and the end of the stream, flush.
    if (inputs_ready_ && (written_ + 1) % 64 != 0) options.set_buffer_hint();
    if (!stream_->Write(request_, options)) {
      write_failed_ = true;  // this one may or may not have left too
      return false;
    }
    ++written_;
    if (written_ == 1) {
      request_.clear_max_in_flight();
      request_.clear_max_answers_per_response();
    }
    return true;
  }

  // Half-closes, waits for every answer and the stream's end.
  void Close() {
    stream_->WritesDone();
    reader_.join();
    rpc_error_ = stream_->Finish();
  }

  // Prints the failures (stderr) and the summary; returns the exit code.
  int Report(bool json) {
    progress_->Finish();
    std::sort(
        failures_.begin(), failures_.end(),
        [](const Failure& a, const Failure& b) { return a.number < b.number; });
    const int64_t not_answered =
        written_ + (write_failed_ ? 1 : 0) - sent_ - failed_;
    double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
    double rate = seconds > 0 ? (sent_ + failed_) / seconds : 0;
    if (json) {
      std::string out = absl::StrFormat(
          "{\"sent\":%d,\"failed\":%d,\"seconds\":%.3f,\"rate\":%.1f,"
          "\"failures\":[",
          sent_, failed_, seconds, rate);
      for (size_t i = 0; i < failures_.size(); ++i) {
        absl::StrAppend(&out, i > 0 ? "," : "",
                        "{\"message\":", failures_[i].number, ",\"code\":\"",
                        CodeName(failures_[i].code),
                        "\",\"error\":", JsonString(failures_[i].error), "}");
      }
      absl::StrAppend(&out, "]");
      if (!rpc_error_.ok()) {
        absl::StrAppend(
            &out, ",\"unknown\":", not_answered, ",\"rpc_error\":{",
            "\"code\":\"", CodeName(rpc_error_.error_code()),
            "\",\"message\":", JsonString(rpc_error_.error_message()), "}");
      }
      std::printf("%s}\n", out.c_str());
    } else {
      for (size_t i = 0; i < failures_.size() && i < kListedFailures; ++i) {
        std::fprintf(stderr, "message %lld: %s: %s\n",
                     static_cast<long long>(failures_[i].number),
                     CodeName(failures_[i].code).c_str(),
                     failures_[i].error.c_str());
      }
      if (failed_ > static_cast<int64_t>(kListedFailures)) {
        std::fprintf(stderr, "... and %s more failed\n",
                     WithThousands(failed_ - kListedFailures).c_str());
      }
      // One hint, for the first failure: the rest are usually alike.
      if (!failures_.empty()) {
        std::string hint = HintFor(failures_[0].code, failures_[0].error);
        if (!hint.empty()) std::fprintf(stderr, "  hint: %s\n", hint.c_str());
      }
      std::printf("sent %s, failed %s in %.2f s (%s msg/s)\n",
                  WithThousands(sent_).c_str(), WithThousands(failed_).c_str(),
                  seconds, WithThousands(std::llround(rate)).c_str());
    }
    std::fflush(stdout);
    if (!rpc_error_.ok()) {
      ReportRpcError(client_, rpc_error_);
      // A stream that never reached a gateway published nothing.
      const bool unsent = DescribeUnreachable(rpc_error_, "", "").has_value();
      if (unsent) {
        std::fprintf(stderr,
                     "amqpgw: stopped; the stream never reached the gateway: "
                     "nothing was published\n");
      } else {
        std::fprintf(stderr,
                     "amqpgw: stopped; %s without an answer may or may not "
                     "have been published\n",
                     Plural(not_answered, "message").c_str());
      }
    }
    return rpc_error_.ok() && failed_ == 0 ? kExitOk : kExitRpcError;
  }

 private:
  struct Failure {
    int64_t number;  // 1-based: the line number with --lines
    ::grpc::StatusCode code;
    std::string error;
  };

  static constexpr uint32_t kAnswersPerResponse = 1024;

  // The reader thread: counts every answer until the stream ends.
  void ReadAnswers() {
    v1::PublishStreamResponse r;
    while (stream_->Read(&r)) {
      if (r.answers_size() == 0) Count(r.sequence(), r.result());
      for (const v1::PublishStreamAnswer& a : r.answers()) {
        Count(a.sequence(), a.result());
      }
      progress_->Update(sent_ + failed_);
    }
  }
  void Count(uint64_t sequence, const v1::PublishResult& result) {
    if (result.code() == 0) {
      ++sent_;
      return;
    }
    ++failed_;
    if (failures_.size() < kJsonFailures) {
      failures_.push_back({static_cast<int64_t>(sequence),
                           static_cast<::grpc::StatusCode>(result.code()),
                           result.error()});
    }
  }

  Client& client_;
  const bool inputs_ready_;
  Progress* const progress_;
  const absl::Time start_;
  std::unique_ptr<::grpc::ClientContext> ctx_;
  std::unique_ptr<::grpc::ClientReaderWriter<v1::PublishStreamRequest,
                                             v1::PublishStreamResponse>>
      stream_;
  // Main thread only.
  v1::PublishStreamRequest request_;
  int64_t written_ = 0;
  bool write_failed_ = false;
  // The reader thread's until Close() joins it, then the main thread's.
  int64_t sent_ = 0;
  int64_t failed_ = 0;
  std::vector<Failure> failures_;
  std::thread reader_;
  ::grpc::Status rpc_error_;
};

int PublishOne(const Command& cmd, const ParsedArgs& args, Client& client,
               v1::PublishRequest req) {
  if (args.positionals.size() > 1) {
    if (args.Has("file")) {
      return UsageError(cmd,
                        "give the body as an argument or --file, not both");
    }
    req.set_body(args.positionals[1]);
  } else {
    absl::StatusOr<FilePtr> in = OpenInput(args);
    if (!in.ok()) return UsageError(cmd, in.status().message());
    if (in->get() == stdin && isatty(STDIN_FILENO)) {
      std::fprintf(stderr,
                   "(reading the body from stdin; end it with Ctrl-D)\n");
    }
    std::string body;
    if (!ReadAll(in->get(), &body)) {
      return UsageError(
          cmd, absl::StrCat("cannot read the body: ", std::strerror(errno)));
    }
    req.set_body(std::move(body));
  }
  v1::PublishResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().Publish(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  if (client.options().json) {
    PrintJson(resp);
  } else {
    // A message_id only when the message has one (--message-id, or the
    // gateway's --default_message_id).
    std::string id = resp.message_id().empty()
                         ? std::string()
                         : absl::StrCat(" message_id=", resp.message_id());
    std::printf("published%s exchange=%s routing_key=%s confirmed=%s\n",
                id.c_str(), JsonString(req.exchange()).c_str(),
                JsonString(req.routing_key()).c_str(),
                FormatTimestamp(resp.publish_time()).c_str());
  }
  return kExitOk;
}

int Run(const Command& cmd, const ParsedArgs& args, Client& client,
        bool lines) {
  v1::PublishRequest message_template;
  absl::Status st = BuildTemplate(args, &message_template);
  if (!st.ok()) return UsageError(cmd, st.message());
  uint64_t count = 1;
  if (args.Has("count")) {
    absl::StatusOr<uint64_t> c = ParseCount(args.Get("count"), 1ull << 40);
    if (!c.ok() || *c == 0) {
      return UsageError(cmd, absl::StrCat("--count: '", args.Get("count"),
                                          "' is not a whole number >= 1"));
    }
    count = *c;
  }
  absl::StatusOr<uint64_t> max_in_flight =
      ParseCount(args.Get("max-in-flight", "256"), kMaxInFlight);
  if (!max_in_flight.ok() || *max_in_flight == 0) {
    return UsageError(
        cmd, absl::StrCat("--max-in-flight: '", args.Get("max-in-flight"),
                          "' is not 1..", kMaxInFlight));
  }
  if (lines && args.positionals.size() > 1) {
    return UsageError(cmd,
                      "--lines reads --file or stdin, not a BODY argument");
  }
  if (lines && args.Has("count")) {
    return UsageError(cmd, "--lines and --count exclude each other");
  }
  if (!lines && count == 1) {
    return PublishOne(cmd, args, client, std::move(message_template));
  }

  FilePtr in;
  std::string body;  // --count: the one body, sent count times
  int64_t total = static_cast<int64_t>(count);
  if (!lines && args.positionals.size() > 1) {
    if (args.Has("file")) {
      return UsageError(cmd,
                        "give the body as an argument or --file, not both");
    }
    body = args.positionals[1];
  } else {
    absl::StatusOr<FilePtr> opened = OpenInput(args);
    if (!opened.ok()) return UsageError(cmd, opened.status().message());
    in = *std::move(opened);
    if (in.get() == stdin && isatty(STDIN_FILENO)) {
      std::fprintf(stderr, "(reading %s from stdin; end with Ctrl-D)\n",
                   lines ? "messages, one a line," : "the body");
    }
    if (lines) {
      total = CountLines(in.get());
    } else if (!ReadAll(in.get(), &body)) {
      return UsageError(
          cmd, absl::StrCat("cannot read the body: ", std::strerror(errno)));
    }
  }

  bool show_progress = isatty(STDERR_FILENO) && !args.GetBool("no-progress");
  Progress progress(stderr, show_progress, total);
  // --count, or a regular file: the next message is always at hand.
  const bool inputs_ready = !lines || total >= 0;
  StreamSender sender(client, message_template,
                      static_cast<uint32_t>(*max_in_flight), inputs_ready,
                      &progress);
  bool ok = true;
  if (lines) {
    char* line = nullptr;
    size_t cap = 0;
    ssize_t n;
    while (ok && (n = getline(&line, &cap, in.get())) >= 0) {
      size_t len = static_cast<size_t>(n);
      if (len > 0 && line[len - 1] == '\n') --len;
      if (len > 0 && line[len - 1] == '\r') --len;
      ok = sender.Add(std::string(line, len));
    }
    std::free(line);
  } else {
    for (uint64_t i = 0; ok && i < count; ++i) ok = sender.Add(body);
  }
  sender.Close();
  return sender.Report(client.options().json);
}

int RunPublish(const Command& cmd, const ParsedArgs& args, Client& client) {
  return Run(cmd, args, client, args.GetBool("lines"));
}

int RunPublishBatch(const Command& cmd, const ParsedArgs& args,
                    Client& client) {
  return Run(cmd, args, client, /*lines=*/true);
}

std::vector<FlagSpec> MessageFlags() {
  return {
      {"exchange", "NAME",
       "publish to this exchange (default: the default exchange, which routes "
       "to the queue named ROUTING_KEY)"},
      {"file", "FILE", "read the body (or the lines) from FILE; - is stdin"},
      {"header", "KEY[:TYPE]=VALUE",
       absl::StrCat("an application header (repeatable). Types: ", kFieldTypes,
                    ". Example: --header attempt:int=5"),
       true},
      {"persistent", "", "written to disk on durable queues (the default)"},
      {"transient", "", "kept in memory only"},
      {"priority", "N", "0..255"},
      {"ttl", "DURATION", "per-message TTL, e.g. 30s, 1500ms (expiration)"},
      {"content-type", "TYPE", "e.g. application/json"},
      {"content-encoding", "ENC", "e.g. gzip"},
      {"correlation-id", "ID", "e.g. to match a reply to its request"},
      {"reply-to", "QUEUE", "where replies should go"},
      {"message-id", "ID",
       "default: none, unless the gateway runs with --default_message_id "
       "(then a UUID)"},
      {"type", "TYPE", "the message's type property"},
      {"app-id", "ID", "the sending application"},
      {"user-id", "USER", "must equal the broker user"},
      {"timestamp", "TIME", "now, RFC 3339 or Unix seconds"},
      {"allow-unroutable", "",
       "let the broker drop a message no queue is bound for (default: "
       "FAILED_PRECONDITION NO_ROUTE)"},
  };
}

std::vector<FlagSpec> BatchFlags() {
  return {
      {"max-in-flight", "N",
       "most messages sent and not yet answered (default 256; the gateway "
       "lowers it to its --confirm_window)"},
      {"no-progress", "", "no progress bar even on a terminal"},
  };
}

}  // namespace

std::vector<Command> PublishCommands() {
  std::vector<FlagSpec> publish_flags = {
      {"lines", "",
       "publish each line of --file or stdin as its own message, on one "
       "PublishStream (like publish-batch)"},
      {"count", "N", "publish the body N times, on one PublishStream"},
  };
  for (FlagSpec& f : BatchFlags()) publish_flags.push_back(f);
  for (FlagSpec& f : MessageFlags()) publish_flags.push_back(f);
  std::vector<FlagSpec> batch_flags = BatchFlags();
  for (FlagSpec& f : MessageFlags()) batch_flags.push_back(f);

  std::vector<Command> out;
  out.push_back({
      "publish",
      "ROUTING_KEY [BODY]",
      "publish a message (or --lines, --count)",
      "Publishes one message and returns once the broker confirmed it "
      "(the confirm time is printed, and the message_id when it has one). The "
      "body is BODY, or the "
      "bytes of --file, or standard input, exactly as given (no newline is "
      "added or removed). With the default exchange ROUTING_KEY is the "
      "queue's name.\n\n"
      "--lines publishes every line of --file or stdin as its own message "
      "(without its line ending) and --count N sends the body N times; both "
      "go through one PublishStream with up to --max-in-flight messages "
      "awaiting their confirms, show a progress bar when stderr is a "
      "terminal, and end with a summary: sent, failed, rate. Failed "
      "messages are listed on stderr by number (the line "
      "number with --lines); exit code 1 when any failed.",
      publish_flags,
      {"amqpgw publish orders 'hello'",
       "echo '{\"id\": 7}' | amqpgw publish orders --content-type "
       "application/json",
       "amqpgw publish order.created --exchange events --file order.json "
       "--header attempt:int=1 --header source=web",
       "amqpgw publish orders --file orders.txt --lines",
       "amqpgw publish orders 'tick' --count 10000 --transient --ttl 60s"},
      1,
      2,
      RunPublish,
  });
  out.push_back({
      "publish-batch",
      "ROUTING_KEY",
      "publish each line of a file or stdin",
      "Publishes each line of --file (or standard input) as its own message "
      "on one PublishStream, up to --max-in-flight awaiting their confirms; "
      "same as 'publish --lines'. A progress bar (messages, rate, ETA) is "
      "drawn on stderr "
      "when it is a terminal, never into a pipe or file. Prints a summary "
      "(sent, failed, rate); exit code 1 when any message failed.",
      batch_flags,
      {"amqpgw publish-batch orders --file orders.txt",
       "seq 1 100000 | amqpgw publish-batch numbers --max-in-flight 1024",
       "amqpgw publish-batch orders --file orders.ndjson --json"},
      1,
      1,
      RunPublishBatch,
  });
  return out;
}

}  // namespace amqpgw::cli
