#include "tests/support/raw_http.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace amqpgw::testing {

RawHttp::RawHttp(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

RawHttp::~RawHttp() {
  if (fd_ >= 0) close(fd_);
}

RawHttp::RawHttp(RawHttp&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      received_(std::move(other.received_)),
      closed_(other.closed_) {}

bool RawHttp::Send(absl::string_view data) {
  while (!data.empty() && fd_ >= 0) {
    ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return data.empty();
}

bool RawHttp::ReadSome(absl::Time deadline) {
  if (fd_ < 0 || closed_) return false;
  int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
  if (ms <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return false;
  char buf[65536];
  ssize_t n = recv(fd_, buf, sizeof(buf), 0);
  if (n <= 0) {
    closed_ = true;  // EOF, or a reset
    return false;
  }
  received_.append(buf, static_cast<size_t>(n));
  return true;
}

bool RawHttp::ReadResponses(size_t responses, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (ParseRawResponses(received_).size() < responses) {
    if (!ReadSome(deadline)) break;
  }
  return ParseRawResponses(received_).size() >= responses;
}

bool RawHttp::ReadUntilClosed(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!closed_ && absl::Now() < deadline) ReadSome(deadline);
  return closed_;
}

std::vector<RawResponse> RawHttp::Responses() const {
  return ParseRawResponses(received_);
}

std::vector<RawResponse> ParseRawResponses(absl::string_view bytes) {
  std::vector<RawResponse> out;
  while (true) {
    size_t end = bytes.find("\r\n\r\n");
    if (end == absl::string_view::npos) return out;
    RawResponse r;
    std::vector<absl::string_view> lines =
        absl::StrSplit(bytes.substr(0, end), "\r\n");
    std::vector<absl::string_view> status = absl::StrSplit(lines[0], ' ');
    if (status.size() < 2 || !absl::SimpleAtoi(status[1], &r.status)) {
      return out;
    }
    for (size_t i = 1; i < lines.size(); ++i) {
      size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) continue;
      r.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
    absl::string_view rest = bytes.substr(end + 4);
    if (r.status == 100) {  // an interim response: no body
      bytes = rest;
      continue;
    }
    if (r.headers["transfer-encoding"] == "chunked") {
      size_t pos = 0;
      bool done = false;
      while (!done) {
        size_t crlf = rest.find("\r\n", pos);
        if (crlf == absl::string_view::npos) return out;
        size_t size = 0;
        if (!absl::SimpleHexAtoi(rest.substr(pos, crlf - pos), &size)) {
          return out;
        }
        if (rest.size() < crlf + 2 + size + 2) return out;
        absl::string_view chunk = rest.substr(crlf + 2, size);
        r.body.append(chunk.data(), chunk.size());
        pos = crlf + 2 + size + 2;
        done = size == 0;
      }
      bytes = rest.substr(pos);
    } else {
      size_t length = 0;
      auto it = r.headers.find("content-length");
      if (it != r.headers.end() && !absl::SimpleAtoi(it->second, &length)) {
        return out;
      }
      if (rest.size() < length) return out;
      r.body = std::string(rest.substr(0, length));
      bytes = rest.substr(length);
    }
    out.push_back(std::move(r));
  }
}

}  // namespace amqpgw::testing
