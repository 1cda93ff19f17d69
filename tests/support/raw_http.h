// HTTP/1.1 on a raw socket, for tests that send what no well-behaved client
// would (slow, malformed, ambiguous or pipelined requests) and look at every
// byte that comes back.
//
// Threads: one RawHttp per thread.
#ifndef AMQPGW_TESTS_SUPPORT_RAW_HTTP_H_
#define AMQPGW_TESTS_SUPPORT_RAW_HTTP_H_

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace amqpgw::testing {

// One response parsed from the bytes received.
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // de-chunked
};

class RawHttp {
 public:
  // Connects to 127.0.0.1:port (blocking); connected() says whether it did.
  explicit RawHttp(int port);
  ~RawHttp();
  RawHttp(RawHttp&& other) noexcept;
  RawHttp(const RawHttp&) = delete;
  RawHttp& operator=(const RawHttp&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Writes all of `data`; false when the connection refused it.
  bool Send(absl::string_view data);
  // Reads until `responses` whole responses arrived, the server closed the
  // connection, or `timeout` passed. True when that many arrived.
  bool ReadResponses(size_t responses, absl::Duration timeout);
  // Reads until the server closes the connection or `timeout` passes; true
  // when it closed.
  bool ReadUntilClosed(absl::Duration timeout);

  // Everything received so far, and the responses parsed from it.
  const std::string& received() const { return received_; }
  std::vector<RawResponse> Responses() const;
  bool closed() const { return closed_; }

 private:
  bool ReadSome(absl::Time deadline);

  int fd_ = -1;
  std::string received_;
  bool closed_ = false;
};

// The responses at the start of `bytes` (complete ones only).
std::vector<RawResponse> ParseRawResponses(absl::string_view bytes);

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_RAW_HTTP_H_
