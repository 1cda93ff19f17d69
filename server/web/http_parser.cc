#include "server/web/http_parser.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/base/hex.h"

namespace amqpgw::web::http {
namespace {

// RFC 9110 token characters.
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// A control character not allowed in a field value (HTAB is allowed).
bool IsBadControl(char c) {
  auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7F;
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

absl::string_view TrimOws(absl::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

HeadResult Refused(int status, std::string reason) {
  HeadResult r;
  r.state = HeadResult::kRefused;
  r.refusal = Refusal{status, std::move(reason)};
  return r;
}

HeadResult Incomplete() { return HeadResult(); }

// Looks at a line that has not ended yet (no LF so far): true when it can
// never become a valid line. The last byte may be the CR of the CRLF still
// to come.
bool PartialLineIsBad(absl::string_view partial) {
  for (size_t i = 0; i < partial.size(); ++i) {
    char c = partial[i];
    if (c == '\r' && i + 1 == partial.size()) return false;
    if (IsBadControl(c)) return true;
  }
  return false;
}

// The line at `pos` (without CRLF) and the position after it; false when it
// has not ended yet. A line must end with CRLF: a bare LF is refused by the
// caller (`*bare_lf`), as is a CR anywhere else (caught as a control char).
bool NextLine(absl::string_view buffer, size_t pos, absl::string_view* line,
              size_t* next, bool* bare_lf) {
  size_t lf = buffer.find('\n', pos);
  if (lf == absl::string_view::npos) return false;
  *bare_lf = lf == pos || buffer[lf - 1] != '\r';
  *line = buffer.substr(pos, *bare_lf ? lf - pos : lf - pos - 1);
  *next = lf + 1;
  return true;
}

std::string Shown(absl::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7F ? c : '?');
  }
  if (s.size() > 40) out += "...";
  return out;
}

std::string TooLarge(uint64_t size, const Limits& limits) {
  return absl::StrCat("request body too large: ", size,
                      " bytes, more than the limit of ", limits.max_body_bytes,
                      " bytes", limits.body_limit_hint);
}

}  // namespace

absl::string_view RequestHead::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return absl::string_view();
}

bool DecodePath(absl::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      int byte = i + 2 < in.size() ? HexByte(in[i + 1], in[i + 2]) : -1;
      if (byte <= 0) return false;  // malformed, or an encoded NUL
      out->push_back(static_cast<char>(byte));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> ParseQuery(
    absl::string_view query) {
  auto decode = [](absl::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out.push_back(' ');
      } else if (s[i] == '%' && i + 2 < s.size() &&
                 HexByte(s[i + 1], s[i + 2]) >= 0) {
        out.push_back(static_cast<char>(HexByte(s[i + 1], s[i + 2])));
        i += 2;
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  };
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view part : absl::StrSplit(query, '&')) {
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      out.emplace_back(decode(part), "");
    } else {
      out.emplace_back(decode(part.substr(0, eq)), decode(part.substr(eq + 1)));
    }
  }
  return out;
}

HeadResult ParseRequestHead(absl::string_view buffer, const Limits& limits) {
  // Empty lines before the request line are ignored (RFC 9112 2.2).
  size_t pos = 0;
  while (pos < buffer.size() && (buffer[pos] == '\r' || buffer[pos] == '\n')) {
    if (buffer[pos] == '\n' || pos + 1 == buffer.size()) {
      if (buffer[pos] == '\n') {
        return Refused(400, "line ends must be CRLF");
      }
      return Incomplete();
    }
    if (buffer[pos + 1] != '\n') return Refused(400, "bare CR in the request");
    pos += 2;
    if (pos > limits.max_head_bytes) {
      return Refused(400, "too many empty lines before the request");
    }
  }

  // The request line.
  absl::string_view line;
  size_t next = 0;
  bool bare_lf = false;
  if (!NextLine(buffer, pos, &line, &next, &bare_lf)) {
    absl::string_view partial = buffer.substr(pos);
    if (partial.size() > limits.max_request_line_bytes) {
      return Refused(414, "request line too long");
    }
    if (PartialLineIsBad(partial)) {
      return Refused(400, "control character in the request line");
    }
    return Incomplete();
  }
  if (bare_lf) return Refused(400, "line ends must be CRLF");
  if (line.size() > limits.max_request_line_bytes) {
    return Refused(414, "request line too long");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) {
    return Refused(400, "malformed request line (want METHOD TARGET VERSION)");
  }
  RequestHead head;
  if (!IsToken(parts[0])) return Refused(400, "malformed method");
  head.method = std::string(parts[0]);
  for (char c : parts[1]) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) {
      return Refused(400, "request target has a byte outside visible ASCII");
    }
  }
  head.target = std::string(parts[1]);
  absl::string_view version = parts[2];
  if (version == "HTTP/1.1") {
    head.minor_version = 1;
  } else if (version == "HTTP/1.0") {
    head.minor_version = 0;
    head.keep_alive = false;
  } else if (version.size() == 8 && absl::StartsWith(version, "HTTP/") &&
             absl::ascii_isdigit(version[5]) && version[6] == '.' &&
             absl::ascii_isdigit(version[7])) {
    return Refused(505, absl::StrCat(version, " is not supported (HTTP/1.1)"));
  } else {
    return Refused(400, "malformed HTTP version");
  }
  pos = next;

  // Header fields, up to the blank line.
  while (true) {
    if (!NextLine(buffer, pos, &line, &next, &bare_lf)) {
      absl::string_view partial = buffer.substr(pos);
      if (buffer.size() > limits.max_head_bytes) {
        return Refused(431, "request header fields too large");
      }
      if (PartialLineIsBad(partial)) {
        return Refused(400, "control character in a header field");
      }
      if (!partial.empty() && IsOws(partial[0])) {
        return Refused(400, "obsolete line folding in a header field");
      }
      return Incomplete();
    }
    if (next > limits.max_head_bytes) {
      return Refused(431, "request header fields too large");
    }
    if (bare_lf) return Refused(400, "line ends must be CRLF");
    pos = next;
    if (line.empty()) break;
    if (IsOws(line[0])) {
      return Refused(400, "obsolete line folding in a header field");
    }
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) {
      return Refused(400, "header field without ':'");
    }
    absl::string_view name = line.substr(0, colon);
    if (!name.empty() && IsOws(name.back())) {
      return Refused(400, "whitespace before ':' in a header field");
    }
    if (!IsToken(name)) return Refused(400, "malformed header field name");
    absl::string_view value = TrimOws(line.substr(colon + 1));
    for (char c : value) {
      if (IsBadControl(c)) {
        return Refused(
            400, absl::StrCat("control character in header ", Shown(name)));
      }
    }
    if (head.headers.size() == limits.max_header_count) {
      return Refused(431, absl::StrCat("more than ", limits.max_header_count,
                                       " header fields"));
    }
    head.headers.emplace_back(absl::AsciiStrToLower(name), std::string(value));
  }
  head.head_bytes = pos;

  // What the fields mean for framing and the connection.
  int hosts = 0;
  bool has_length = false;
  bool length_too_large = false;
  std::vector<std::string> codings;
  bool has_transfer_encoding = false;
  for (const auto& [name, value] : head.headers) {
    if (name == "host") {
      ++hosts;
    } else if (name == "content-length") {
      for (absl::string_view item : absl::StrSplit(value, ',')) {
        item = TrimOws(item);
        if (item.empty() || !std::all_of(item.begin(), item.end(), [](char c) {
              return absl::ascii_isdigit(static_cast<unsigned char>(c));
            })) {
          return Refused(400, absl::StrCat("malformed Content-Length '",
                                           Shown(item), "'"));
        }
        uint64_t n = 0;
        bool big = item.size() > 19 || !absl::SimpleAtoi(item, &n);
        if (has_length &&
            (big != length_too_large || (!big && n != head.content_length))) {
          return Refused(400, "conflicting Content-Length values");
        }
        has_length = true;
        length_too_large = big;
        head.content_length = n;
      }
    } else if (name == "transfer-encoding") {
      has_transfer_encoding = true;
      for (absl::string_view item : absl::StrSplit(value, ',')) {
        item = TrimOws(item);
        if (!item.empty()) codings.push_back(absl::AsciiStrToLower(item));
      }
    } else if (name == "connection") {
      for (absl::string_view item : absl::StrSplit(value, ',')) {
        item = TrimOws(item);
        if (absl::EqualsIgnoreCase(item, "close")) {
          head.keep_alive = false;
        } else if (absl::EqualsIgnoreCase(item, "keep-alive") &&
                   head.minor_version == 0) {
          head.keep_alive = true;
        }
      }
    } else if (name == "expect") {
      if (!absl::EqualsIgnoreCase(value, "100-continue")) {
        return Refused(417, "only 'Expect: 100-continue' is supported");
      }
      head.expect_continue = true;
    }
  }
  if (head.minor_version == 1 && hosts == 0) {
    return Refused(400, "missing Host header");
  }
  if (hosts > 1) return Refused(400, "more than one Host header");
  if (has_transfer_encoding) {
    if (has_length) {
      return Refused(400,
                     "both Content-Length and Transfer-Encoding (ambiguous "
                     "framing)");
    }
    if (head.minor_version == 0) {
      return Refused(400, "Transfer-Encoding in an HTTP/1.0 request");
    }
    if (codings.size() != 1 || codings[0] != "chunked") {
      std::string other = "(empty)";
      for (const std::string& c : codings) {
        if (c != "chunked") other = c;
      }
      if (codings.size() > 1 && other == "(empty)") other = "chunked, chunked";
      return Refused(501, absl::StrCat("transfer coding '", Shown(other),
                                       "' is not supported (only chunked)"));
    }
    head.framing = BodyFraming::kChunked;
  } else if (has_length) {
    if (length_too_large) {
      return Refused(413, absl::StrCat("request body too large", " (limit ",
                                       limits.max_body_bytes, " bytes",
                                       limits.body_limit_hint, ")"));
    }
    if (head.content_length > limits.max_body_bytes) {
      return Refused(413, TooLarge(head.content_length, limits));
    }
    if (head.content_length > 0) head.framing = BodyFraming::kContentLength;
  }
  if (head.framing == BodyFraming::kNone) head.expect_continue = false;

  // The target: origin-form, absolute-form or (OPTIONS) asterisk-form.
  absl::string_view target = head.target;
  if (target.find('#') != absl::string_view::npos) {
    return Refused(400, "request target with a fragment");
  }
  if (target == "*") {
    if (head.method != "OPTIONS") {
      return Refused(400, "'*' is a target for OPTIONS only");
    }
    head.path = "*";
    return HeadResult{HeadResult::kComplete, std::move(head), {}};
  }
  for (absl::string_view scheme : {"http://", "https://"}) {
    if (target.size() > scheme.size() &&
        absl::EqualsIgnoreCase(target.substr(0, scheme.size()), scheme)) {
      absl::string_view rest = target.substr(scheme.size());
      size_t slash = rest.find_first_of("/?");
      target = slash == absl::string_view::npos ? "/" : rest.substr(slash);
      if (target[0] == '?') {
        return Refused(400, "absolute request target without a path");
      }
      break;
    }
  }
  if (target.empty() || target[0] != '/') {
    return Refused(400, "request target must start with '/'");
  }
  absl::string_view path = target;
  if (size_t q = target.find('?'); q != absl::string_view::npos) {
    path = target.substr(0, q);
    head.query = std::string(target.substr(q + 1));
  }
  if (!DecodePath(path, &head.path)) {
    return Refused(400, "malformed percent-encoding in the path");
  }
  return HeadResult{HeadResult::kComplete, std::move(head), {}};
}

ChunkedDecoder::ChunkedDecoder(const Limits& limits)
    : max_body_bytes_(limits.max_body_bytes),
      body_limit_hint_(limits.body_limit_hint) {}

ChunkedDecoder::State ChunkedDecoder::Refuse(int status, std::string reason) {
  refusal_ = Refusal{status, std::move(reason)};
  step_ = Step::kDone;
  return State::kRefused;
}

ChunkedDecoder::State ChunkedDecoder::Feed(absl::string_view in,
                                           size_t* consumed,
                                           std::string* body) {
  constexpr size_t kMaxExtensionBytes = 1024;
  constexpr size_t kMaxTrailerBytes = 8 * 1024;
  if (!refusal_.reason.empty()) return State::kRefused;
  size_t i = 0;
  while (i < in.size() && step_ != Step::kDone) {
    char c = in[i];
    switch (step_) {
      case Step::kSize: {
        int v = HexValue(c);
        if (v >= 0) {
          if (++size_digits_ > 16) {
            return Refuse(
                413, absl::StrCat("chunk size too large", body_limit_hint_));
          }
          chunk_left_ = chunk_left_ * 16 + static_cast<uint64_t>(v);
          ++i;
          break;
        }
        if (size_digits_ == 0) return Refuse(400, "malformed chunk size");
        if (chunk_left_ > max_body_bytes_ - body_bytes_) {
          return Refuse(
              413, absl::StrCat("request body too large: more "
                                "than the limit of ",
                                max_body_bytes_, " bytes", body_limit_hint_));
        }
        if (c == ';' || IsOws(c)) {
          step_ = Step::kExtension;
        } else if (c == '\r') {
          step_ = Step::kSizeLf;
        } else {
          return Refuse(400, "malformed chunk size");
        }
        ++i;
        break;
      }
      case Step::kExtension:
        if (c == '\r') {
          step_ = Step::kSizeLf;
        } else if (IsBadControl(c)) {
          return Refuse(400, "control character in a chunk extension");
        } else if (++extension_bytes_ > kMaxExtensionBytes) {
          return Refuse(400, "chunk extension too long");
        }
        ++i;
        break;
      case Step::kSizeLf:
        if (c != '\n') return Refuse(400, "chunk size line must end in CRLF");
        ++i;
        extension_bytes_ = 0;
        size_digits_ = 0;
        step_ = chunk_left_ == 0 ? Step::kTrailerStart : Step::kData;
        break;
      case Step::kData: {
        size_t n =
            static_cast<size_t>(std::min<uint64_t>(chunk_left_, in.size() - i));
        body->append(in.data() + i, n);
        i += n;
        chunk_left_ -= n;
        body_bytes_ += n;
        if (chunk_left_ == 0) step_ = Step::kDataCr;
        break;
      }
      case Step::kDataCr:
        if (c != '\r') return Refuse(400, "chunk longer than its size");
        ++i;
        step_ = Step::kDataLf;
        break;
      case Step::kDataLf:
        if (c != '\n') return Refuse(400, "chunk data must end in CRLF");
        ++i;
        step_ = Step::kSize;
        break;
      case Step::kTrailerStart:
      case Step::kTrailerLine:
      case Step::kTrailerLineLf:
      case Step::kFinalLf:
        if (++trailer_bytes_ > kMaxTrailerBytes) {
          return Refuse(431, "chunked trailer fields too large");
        }
        if (step_ == Step::kTrailerStart) {
          if (c == '\r') {
            step_ = Step::kFinalLf;
          } else if (IsBadControl(c) || IsOws(c)) {
            return Refuse(400, "malformed chunked trailer field");
          } else {
            step_ = Step::kTrailerLine;
          }
        } else if (step_ == Step::kTrailerLine) {
          if (c == '\r') {
            step_ = Step::kTrailerLineLf;
          } else if (IsBadControl(c)) {
            return Refuse(400, "control character in a chunked trailer field");
          }
        } else if (c != '\n') {
          return Refuse(400, "chunked trailer lines must end in CRLF");
        } else {
          step_ = step_ == Step::kFinalLf ? Step::kDone : Step::kTrailerStart;
        }
        ++i;
        break;
      case Step::kDone:
        break;
    }
  }
  *consumed = i;
  return step_ == Step::kDone ? State::kDone : State::kNeedMore;
}

const char* StatusReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Error";
  }
}

}  // namespace amqpgw::web::http
