// publish and publish-batch: one confirmed message, or many (lines of a
// file or stdin, or --count copies) through PublishBatch in chunks.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/hints.h"
#include "client/progress.h"
#include "client/values.h"

namespace amqpgw::cli {
namespace {

constexpr size_t kMaxBatch = 10000;
// A chunk is sent early once its bodies reach this size, well under the
// daemon's default --max_request_bytes (64 MiB).
constexpr size_t kMaxChunkBytes = 8 << 20;
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

// Sends messages in PublishBatch chunks and keeps the tally. Lives on the
// main thread for one run; one call in flight at a time.
class BatchSender {
 public:
  BatchSender(Client& client, const v1::PublishRequest& message_template,
              size_t batch_size, Progress* progress)
      : client_(client),
        template_(message_template),
        batch_size_(batch_size),
        progress_(progress),
        start_(absl::Now()) {}

  // Queues one body; sends the chunk when full. False after an RPC error.
  bool Add(std::string body) {
    chunk_bytes_ += body.size();
    v1::PublishRequest* m = request_.add_messages();
    *m = template_;
    m->set_body(std::move(body));
    if (static_cast<size_t>(request_.messages_size()) >= batch_size_ ||
        chunk_bytes_ >= kMaxChunkBytes) {
      return Flush();
    }
    return true;
  }

  bool Flush() {
    if (request_.messages_size() == 0) return rpc_error_.ok();
    v1::PublishBatchResponse resp;
    auto ctx = client_.NewContext();
    ::grpc::Status s =
        client_.gateway().PublishBatch(ctx.get(), request_, &resp);
    if (!s.ok()) {
      rpc_error_ = s;
      not_sent_ += request_.messages_size();
    } else {
      for (int i = 0; i < resp.results_size(); ++i) {
        const v1::PublishResult& r = resp.results(i);
        if (r.code() == 0) {
          ++sent_;
        } else {
          ++failed_;
          if (failures_.size() < kJsonFailures) {
            failures_.push_back({first_index_ + i + 1,
                                 static_cast<::grpc::StatusCode>(r.code()),
                                 r.error()});
          }
        }
      }
    }
    first_index_ += request_.messages_size();
    request_.clear_messages();
    chunk_bytes_ = 0;
    progress_->Update(sent_ + failed_);
    return s.ok();
  }

  // Prints the failures (stderr) and the summary; returns the exit code.
  int Report(bool json) {
    progress_->Finish();
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
            &out, ",\"unknown\":", not_sent_, ",\"rpc_error\":{", "\"code\":\"",
            CodeName(rpc_error_.error_code()),
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
      // A call that never reached a gateway published nothing.
      const bool unsent = DescribeUnreachable(rpc_error_, "", "").has_value();
      std::fprintf(stderr, "amqpgw: stopped; the last chunk of %s %s\n",
                   Plural(not_sent_, "message").c_str(),
                   unsent ? "never reached the gateway"
                          : "may or may not have been published");
    }
    return rpc_error_.ok() && failed_ == 0 ? kExitOk : kExitRpcError;
  }

 private:
  struct Failure {
    int64_t number;  // 1-based: the line number with --lines
    ::grpc::StatusCode code;
    std::string error;
  };

  Client& client_;
  const v1::PublishRequest& template_;
  const size_t batch_size_;
  Progress* const progress_;
  const absl::Time start_;
  v1::PublishBatchRequest request_;
  size_t chunk_bytes_ = 0;
  int64_t first_index_ = 0;
  int64_t sent_ = 0;
  int64_t failed_ = 0;
  int64_t not_sent_ = 0;
  std::vector<Failure> failures_;
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
    std::printf(
        "published message_id=%s exchange=%s routing_key=%s confirmed=%s\n",
        resp.message_id().c_str(), JsonString(req.exchange()).c_str(),
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
  absl::StatusOr<uint64_t> batch_size =
      ParseCount(args.Get("batch-size", "500"), kMaxBatch);
  if (!batch_size.ok() || *batch_size == 0) {
    return UsageError(cmd,
                      absl::StrCat("--batch-size: '", args.Get("batch-size"),
                                   "' is not 1..", kMaxBatch));
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
  BatchSender sender(client, message_template, *batch_size, &progress);
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
  if (ok) sender.Flush();
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
      {"message-id", "ID", "default: a UUID set by the gateway"},
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
      {"batch-size", "N",
       "messages per PublishBatch call, 1..10000 (default 500)"},
      {"no-progress", "", "no progress bar even on a terminal"},
  };
}

}  // namespace

std::vector<Command> PublishCommands() {
  std::vector<FlagSpec> publish_flags = {
      {"lines", "",
       "publish each line of --file or stdin as its own message, through "
       "PublishBatch (like publish-batch)"},
      {"count", "N", "publish the body N times, through PublishBatch"},
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
      "(message_id and confirm time are printed). The body is BODY, or the "
      "bytes of --file, or standard input, exactly as given (no newline is "
      "added or removed). With the default exchange ROUTING_KEY is the "
      "queue's name.\n\n"
      "--lines publishes every line of --file or stdin as its own message "
      "(without its line ending) and --count N sends the body N times; both "
      "go through PublishBatch in chunks of --batch-size, show a progress "
      "bar when stderr is a terminal, and end with a summary: sent, failed, "
      "rate. Failed messages are listed on stderr by number (the line "
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
      "through PublishBatch, in chunks of --batch-size; same as 'publish "
      "--lines'. A progress bar (messages, rate, ETA) is drawn on stderr "
      "when it is a terminal, never into a pipe or file. Prints a summary "
      "(sent, failed, rate); exit code 1 when any message failed.",
      batch_flags,
      {"amqpgw publish-batch orders --file orders.txt",
       "seq 1 100000 | amqpgw publish-batch numbers --batch-size 2000",
       "amqpgw publish-batch orders --file orders.ndjson --json"},
      1,
      1,
      RunPublishBatch,
  });
  return out;
}

}  // namespace amqpgw::cli
