// QuoteInput: the one way an error message (or a log line) shows text a
// caller sent. The caller's text is quoted, escaped and cut to a bounded
// length, so that a 1 MB subscription id or queue name can never make an
// error larger than gRPC's metadata limit, and control characters or broken
// UTF-8 never reach a terminal or a log parser.
#ifndef AMQPGW_SERVER_BASE_QUOTE_H_
#define AMQPGW_SERVER_BASE_QUOTE_H_

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/base/utf8.h"

namespace amqpgw {

// Longest part of the caller's text QuoteInput shows, in bytes.
inline constexpr size_t kMaxQuotedBytes = 128;

// 'text' in single quotes. Quotes and backslashes are escaped with a
// backslash; control characters and bytes that are not valid UTF-8 become
// \xNN; valid UTF-8 stays as it is. Text longer than `max_bytes` is cut (at a
// character boundary) and followed by "..." and its whole length:
//   'abc'    'aaaa'... (1048576 bytes)
inline std::string QuoteInput(absl::string_view text,
                              size_t max_bytes = kMaxQuotedBytes) {
  absl::string_view shown = text;
  if (text.size() > max_bytes) {
    size_t cut = max_bytes;
    // Back off to the start of a character.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    shown = text.substr(0, cut);
  }
  std::string out = "'";
  out.reserve(shown.size() + 32);
  size_t i = 0;
  while (i < shown.size()) {
    unsigned char c = static_cast<unsigned char>(shown[i]);
    if (c == '\'' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (int len = c >= 0x80 ? Utf8SequenceAt(shown, i) : 0; len > 0) {
      out.append(shown.data() + i, len);
      i += len;
    } else {
      char buf[5];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out.append(buf);
      ++i;
    }
  }
  out.push_back('\'');
  if (shown.size() < text.size()) {
    absl::StrAppend(&out, "... (", text.size(), " bytes)");
  }
  return out;
}

}  // namespace amqpgw

#endif  // AMQPGW_SERVER_BASE_QUOTE_H_
