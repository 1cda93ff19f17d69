#include "tests/support/grpc_web_client.h"

#include <httplib.h>
#include <strings.h>

#include "absl/strings/numbers.h"
#include "server/base/sync.h"
#include "server/web/grpc_web_frame.h"

namespace amqpgw::testing {

using web::AppendFrame;
using web::Base64DecodeChunks;
using web::Base64Encode;
using web::kDataFrame;
using web::kTrailerFrame;

bool CaseInsensitiveLess::operator()(const std::string& a,
                                     const std::string& b) const {
  return strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string GrpcWebReply::Header(const std::string& key) const {
  auto it = headers.find(key);
  return it == headers.end() ? "" : it->second;
}

std::string GrpcWebReply::Trailer(const std::string& key) const {
  for (const auto& [k, v] : trailers) {
    if (k == key) return v;
  }
  return "";
}

int GrpcWebReply::GrpcStatus() const {
  int code = -1;
  std::string s = has_trailer ? Trailer("grpc-status") : Header("grpc-status");
  return absl::SimpleAtoi(s, &code) ? code : -1;
}

std::string GrpcWebReply::GrpcMessage() const {
  return web::PercentDecode(has_trailer ? Trailer("grpc-message")
                                        : Header("grpc-message"));
}

std::string GrpcWebBody(const std::vector<std::string>& messages) {
  std::string body;
  for (const auto& m : messages) AppendFrame(kDataFrame, m, &body);
  return body;
}

void DecodeGrpcWebBody(const std::string& raw, bool text, GrpcWebReply* out) {
  out->messages.clear();
  out->has_trailer = false;
  out->trailers.clear();
  out->decode_error.clear();
  std::string bytes = raw;
  if (text) {
    absl::StatusOr<std::string> d = Base64DecodeChunks(
        absl::string_view(raw).substr(0, raw.size() / 4 * 4));
    if (!d.ok()) {
      out->decode_error = std::string(d.status().message());
      return;
    }
    bytes = *d;
  }
  size_t pos = 0;
  while (bytes.size() - pos >= 5) {
    uint8_t flags = static_cast<uint8_t>(bytes[pos]);
    uint32_t len = (uint32_t{static_cast<uint8_t>(bytes[pos + 1])} << 24) |
                   (uint32_t{static_cast<uint8_t>(bytes[pos + 2])} << 16) |
                   (uint32_t{static_cast<uint8_t>(bytes[pos + 3])} << 8) |
                   uint32_t{static_cast<uint8_t>(bytes[pos + 4])};
    if (bytes.size() - pos - 5 < len) break;  // not all there yet
    std::string payload = bytes.substr(pos + 5, len);
    pos += 5 + len;
    if (out->has_trailer) {
      out->decode_error = "a frame after the trailer frame";
      return;
    }
    if (flags & kTrailerFrame) {
      out->has_trailer = true;
      auto block = web::ParseTrailerBlock(payload);
      if (block.ok()) {
        out->trailers = *block;
      } else {
        out->decode_error = std::string(block.status().message());
      }
    } else {
      out->messages.push_back(std::move(payload));
    }
  }
}

int CountDataFrames(const std::string& raw, int* empty) {
  GrpcWebReply r;
  DecodeGrpcWebBody(raw, false, &r);
  if (empty != nullptr) {
    *empty = 0;
    for (const auto& m : r.messages) *empty += m.empty() ? 1 : 0;
  }
  return static_cast<int>(r.messages.size());
}

GrpcWebReply GrpcWebPost(int port, const std::string& path,
                         const std::vector<std::string>& messages,
                         const GrpcWebCallOptions& o) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  client.set_connection_timeout(30, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  for (const auto& [k, v] : o.headers) req.headers.emplace(k, v);
  std::string body = o.use_raw_body ? o.raw_body : GrpcWebBody(messages);
  if (o.text && !o.use_raw_body) body = Base64Encode(body);
  req.body = body;
  req.set_header("Content-Type", !o.content_type.empty() ? o.content_type
                                 : o.text ? "application/grpc-web-text"
                                          : "application/grpc-web+proto");
  GrpcWebReply reply;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    reply.raw.append(data, n);
    return o.on_data ? o.on_data(reply.raw) : true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  reply.sent = client.send(req, res, error);
  reply.http_status = res.status;
  for (const auto& [k, v] : res.headers) reply.headers.emplace(k, v);
  if (reply.http_status == 200) DecodeGrpcWebBody(reply.raw, o.text, &reply);
  return reply;
}

std::string HttpReply::Header(const std::string& key) const {
  auto it = headers.find(key);
  return it == headers.end() ? "" : it->second;
}

HttpReply HttpGet(int port, const std::string& path,
                  const WebHeaders& headers) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  httplib::Headers h;
  for (const auto& [k, v] : headers) h.emplace(k, v);
  HttpReply out;
  auto res = client.Get(path.c_str(), h);
  if (!res) return out;
  out.status = res->status;
  for (const auto& [k, v] : res->headers) out.headers.emplace(k, v);
  out.body = res->body;
  return out;
}

GrpcWebStream::GrpcWebStream(int port, const std::string& path,
                             const std::string& request,
                             const GrpcWebCallOptions& o)
    : text_(o.text),
      client_(std::make_unique<httplib::Client>("127.0.0.1", port)) {
  client_->set_read_timeout(600, 0);
  client_->set_connection_timeout(30, 0);
  auto req = std::make_shared<httplib::Request>();
  req->method = "POST";
  req->path = path;
  for (const auto& [k, v] : o.headers) req->headers.emplace(k, v);
  std::string body = GrpcWebBody({request});
  req->body = o.text ? Base64Encode(body) : body;
  req->set_header("Content-Type", o.text ? "application/grpc-web-text"
                                         : "application/grpc-web+proto");
  reader_ = std::thread([this, req] {
    std::string raw;
    req->content_receiver = [&](const char* data, size_t n, uint64_t,
                                uint64_t) {
      raw.append(data, n);
      amqpgw::MutexLock lock(&mu_);
      reply_.raw = raw;
      DecodeGrpcWebBody(raw, text_, &reply_);
      return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    bool sent = client_->send(*req, res, error);
    amqpgw::MutexLock lock(&mu_);
    reply_.sent = sent;
    reply_.http_status = res.status;
    for (const auto& [k, v] : res.headers) reply_.headers.emplace(k, v);
    ended_ = true;
  });
}

GrpcWebStream::~GrpcWebStream() {
  HangUp();
  reader_.join();
}

bool GrpcWebStream::WaitFor(
    const std::function<bool(const GrpcWebReply&)>& done,
    absl::Duration timeout) {
  amqpgw::MutexLock lock(&mu_);
  auto ready = [&] { return ended_ || done(reply_); };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return done(reply_);
}

bool GrpcWebStream::WaitEnded(absl::Duration timeout) {
  amqpgw::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout);
}

void GrpcWebStream::HangUp() { client_->stop(); }

GrpcWebReply GrpcWebStream::Snapshot() const {
  amqpgw::MutexLock lock(&mu_);
  return reply_;
}

}  // namespace amqpgw::testing
