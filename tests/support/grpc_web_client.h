// A small grpc-web client for tests: cpp-httplib over loopback, both content
// types, the body kept raw so tests can look at the bytes on the wire.
#ifndef AMQPGW_TESTS_SUPPORT_GRPC_WEB_CLIENT_H_
#define AMQPGW_TESTS_SUPPORT_GRPC_WEB_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/base/sync.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace amqpgw::testing {

// Header names compare case-insensitively.
struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using WebHeaders = std::multimap<std::string, std::string, CaseInsensitiveLess>;

struct GrpcWebReply {
  bool sent = false;  // the HTTP exchange completed
  int http_status = 0;
  WebHeaders headers;
  std::string raw;  // the body as received
  std::vector<std::string> messages;
  bool has_trailer = false;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string decode_error;

  std::string Header(const std::string& key) const;
  std::string Trailer(const std::string& key) const;
  // From the trailer frame, else from the headers (HTTP-level errors); -1
  // when neither has one.
  int GrpcStatus() const;
  // grpc-message, percent-decoded.
  std::string GrpcMessage() const;
};

struct GrpcWebCallOptions {
  bool text = false;  // application/grpc-web-text
  WebHeaders headers;
  std::string content_type;  // default from `text`
  // Sent as is instead of the framed (and for text, base64) messages.
  bool use_raw_body = false;
  std::string raw_body;
  // Called with the body received so far; return false to hang up.
  std::function<bool(const std::string& raw)> on_data;
};

// POSTs `messages` (serialized) to http://127.0.0.1:port`path`.
GrpcWebReply GrpcWebPost(int port, const std::string& path,
                         const std::vector<std::string>& messages,
                         const GrpcWebCallOptions& options = {});

// The framed request body.
std::string GrpcWebBody(const std::vector<std::string>& messages);

// What a body received so far holds: complete data frames and whether the
// trailer frame arrived (fills messages, has_trailer, trailers,
// decode_error). For text bodies, decodes the longest prefix that is a
// whole number of base64 groups.
void DecodeGrpcWebBody(const std::string& raw, bool text, GrpcWebReply* out);

// Complete data frames in a binary body received so far; counts the empty
// ones (keep-alives) in `*empty` when given.
int CountDataFrames(const std::string& raw, int* empty = nullptr);

// A plain GET.
struct HttpReply {
  int status = 0;  // 0: no answer
  WebHeaders headers;
  std::string body;
  std::string Header(const std::string& key) const;
};
HttpReply HttpGet(int port, const std::string& path,
                  const WebHeaders& headers = {});

// A grpc-web call read on a thread of its own, decoded as bytes arrive:
// for server streams, and for hanging up while the server is silent.
// Threads: any method from any thread.
class GrpcWebStream {
 public:
  GrpcWebStream(int port, const std::string& path, const std::string& request,
                const GrpcWebCallOptions& options = {});
  // Hangs up (if still open) and joins the reader.
  ~GrpcWebStream();

  // Waits until `done(reply so far)` holds; false when it did not within
  // `timeout` (or the call ended without it).
  bool WaitFor(const std::function<bool(const GrpcWebReply&)>& done,
               absl::Duration timeout = absl::Seconds(60));
  // Waits for the end of the call (trailer or connection closed).
  bool WaitEnded(absl::Duration timeout = absl::Seconds(60));
  // Closes the connection, as a browser tab that goes away.
  void HangUp();
  GrpcWebReply Snapshot() const;

 private:
  const bool text_;
  std::unique_ptr<httplib::Client> client_;
  mutable amqpgw::Mutex mu_;
  GrpcWebReply reply_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_GRPC_WEB_CLIENT_H_
