#include "server/web/grpc_web_frame.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/base/hex.h"

namespace amqpgw::web {
namespace {

constexpr char kBase64Chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// -1 for a character outside the standard alphabet.
int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

uint32_t ReadBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) |
         (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

}  // namespace

absl::StatusOr<std::vector<Frame>> ParseFrames(absl::string_view body,
                                               size_t max_payload_bytes) {
  std::vector<Frame> frames;
  size_t pos = 0;
  while (pos < body.size()) {
    if (body.size() - pos < kFrameHeaderBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("grpc-web frame ", frames.size(), ": header cut short (",
                       body.size() - pos, " of 5 bytes)"));
    }
    Frame frame;
    frame.flags = static_cast<uint8_t>(body[pos]);
    uint32_t length = ReadBigEndian32(body.data() + pos + 1);
    pos += kFrameHeaderBytes;
    if (length > max_payload_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("grpc-web frame ", frames.size(), ": ", length,
                       " bytes, more than the limit of ", max_payload_bytes));
    }
    if (body.size() - pos < length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grpc-web frame ", frames.size(), ": payload cut short (",
          body.size() - pos, " of ", length, " bytes)"));
    }
    frame.payload = body.substr(pos, length);
    pos += length;
    frames.push_back(frame);
  }
  return frames;
}

absl::StatusOr<std::vector<absl::string_view>> ParseRequestMessages(
    absl::string_view body, size_t max_total_bytes) {
  absl::StatusOr<std::vector<Frame>> frames =
      ParseFrames(body, max_total_bytes);
  if (!frames.ok()) return frames.status();
  std::vector<absl::string_view> messages;
  size_t total = 0;
  for (size_t i = 0; i < frames->size(); ++i) {
    const Frame& f = (*frames)[i];
    if (f.flags & kTrailerFrame) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grpc-web frame ", i, ": a request carries no trailers"));
    }
    if (f.flags & kCompressedFlag) {
      return absl::UnimplementedError(absl::StrCat(
          "grpc-web frame ", i, ": compressed messages are not supported"));
    }
    if (f.flags != kDataFrame) {
      return absl::InvalidArgumentError(
          absl::StrCat("grpc-web frame ", i, ": reserved flag bits set (0x",
                       absl::Hex(f.flags), ")"));
    }
    total += f.payload.size();
    if (total > max_total_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("grpc-web request: more than ", max_total_bytes,
                       " bytes of messages"));
    }
    messages.push_back(f.payload);
  }
  return messages;
}

void AppendFrame(uint8_t flags, absl::string_view payload, std::string* out) {
  uint32_t n = static_cast<uint32_t>(payload.size());
  char header[kFrameHeaderBytes] = {
      static_cast<char>(flags), static_cast<char>(n >> 24),
      static_cast<char>(n >> 16), static_cast<char>(n >> 8),
      static_cast<char>(n)};
  out->append(header, kFrameHeaderBytes);
  out->append(payload.data(), payload.size());
}

std::string TrailerBlock(
    int status_code, absl::string_view message,
    const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::string out = absl::StrCat("grpc-status: ", status_code, "\r\n");
  if (!message.empty()) {
    absl::StrAppend(&out, "grpc-message: ", PercentEncode(message), "\r\n");
  }
  for (const auto& [key, value] : metadata) {
    std::string k = absl::AsciiStrToLower(key);
    if (absl::EndsWith(k, "-bin")) {
      absl::StrAppend(&out, k, ": ", Base64Encode(value), "\r\n");
    } else {
      absl::StrAppend(&out, k, ": ", value, "\r\n");
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
ParseTrailerBlock(absl::string_view block) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!block.empty()) {
    size_t eol = block.find("\r\n");
    absl::string_view line = block.substr(0, eol);
    block = eol == absl::string_view::npos ? absl::string_view()
                                           : block.substr(eol + 2);
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("trailer line without ':': '", line.substr(0, 100),
                       line.size() > 100 ? "...'" : "'"));
    }
    out.emplace_back(
        absl::AsciiStrToLower(
            absl::StripAsciiWhitespace(line.substr(0, colon))),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return out;
}

std::string Base64Encode(absl::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* u = reinterpret_cast<const unsigned char*>(data.data());
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t{u[i]} << 16) | (uint32_t{u[i + 1]} << 8) | u[i + 2];
    out.push_back(kBase64Chars[(v >> 18) & 63]);
    out.push_back(kBase64Chars[(v >> 12) & 63]);
    out.push_back(kBase64Chars[(v >> 6) & 63]);
    out.push_back(kBase64Chars[v & 63]);
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t v = uint32_t{u[i]} << 16;
    out.push_back(kBase64Chars[(v >> 18) & 63]);
    out.push_back(kBase64Chars[(v >> 12) & 63]);
    out.append("==");
  } else if (rest == 2) {
    uint32_t v = (uint32_t{u[i]} << 16) | (uint32_t{u[i + 1]} << 8);
    out.push_back(kBase64Chars[(v >> 18) & 63]);
    out.push_back(kBase64Chars[(v >> 12) & 63]);
    out.push_back(kBase64Chars[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

absl::StatusOr<std::string> Base64DecodeChunks(absl::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  size_t pos = 0;
  while (pos < text.size()) {
    // One group: 2 to 4 characters; padding only at its end.
    int values[4];
    int n = 0;
    size_t start = pos;
    while (pos < text.size() && n < 4 && text[pos] != '=') {
      int v = Base64Value(text[pos]);
      if (v < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "grpc-web-text: not base64 at offset ", pos, " (byte 0x",
            absl::Hex(static_cast<unsigned char>(text[pos])), ")"));
      }
      values[n++] = v;
      ++pos;
    }
    size_t padding = 0;
    while (pos < text.size() && text[pos] == '=' && n + padding < 4) {
      ++padding;
      ++pos;
    }
    if (n < 2 || (padding > 0 && n + padding != 4)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grpc-web-text: base64 group at offset ", start, " is cut short"));
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 6) | (i < n ? values[i] : 0);
    out.push_back(static_cast<char>(v >> 16));
    if (n >= 3) out.push_back(static_cast<char>(v >> 8));
    if (n == 4) out.push_back(static_cast<char>(v));
  }
  return out;
}

std::string PercentEncode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7E || u == '%') {
      out.push_back('%');
      AppendHex(absl::string_view(&c, 1), &out, /*upper=*/true);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PercentDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int byte = HexByte(text[i + 1], text[i + 2]);
      if (byte >= 0) {
        out.push_back(static_cast<char>(byte));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

absl::StatusOr<absl::Duration> ParseGrpcTimeout(absl::string_view value) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "grpc-timeout: want 1 to 8 digits and a unit (H, M, S, m, u, n), got '",
        value.substr(0, 20), value.size() > 20 ? "...'" : "'"));
  };
  if (value.size() < 2 || value.size() > 9) return bad();
  absl::string_view digits = value.substr(0, value.size() - 1);
  for (char c : digits) {
    if (c < '0' || c > '9') return bad();
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n)) return bad();
  switch (value.back()) {
    case 'H':
      return absl::Hours(n);
    case 'M':
      return absl::Minutes(n);
    case 'S':
      return absl::Seconds(n);
    case 'm':
      return absl::Milliseconds(n);
    case 'u':
      return absl::Microseconds(n);
    case 'n':
      return absl::Nanoseconds(n);
    default:
      return bad();
  }
}

absl::StatusOr<WireFormat> ParseContentType(absl::string_view content_type) {
  absl::string_view type = content_type.substr(0, content_type.find(';'));
  std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(type));
  if (t == "application/grpc-web" || t == "application/grpc-web+proto") {
    return WireFormat::kBinary;
  }
  if (t == "application/grpc-web-text" ||
      t == "application/grpc-web-text+proto") {
    return WireFormat::kText;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "content-type: want application/grpc-web(+proto) or "
      "application/grpc-web-text(+proto), got '",
      content_type.substr(0, 100), content_type.size() > 100 ? "...'" : "'"));
}

const char* ResponseContentType(WireFormat format) {
  return format == WireFormat::kText ? "application/grpc-web-text+proto"
                                     : "application/grpc-web+proto";
}

bool IsValidMetadataKey(absl::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool IsValidMetadataValue(absl::string_view value) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7E) return false;
  }
  return true;
}

}  // namespace amqpgw::web
