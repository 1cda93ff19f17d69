// UTF-8 checks for text that crosses the gateway: API strings must be valid
// UTF-8 (protobuf's rule), AMQP strings need not be.
#ifndef AMQPGW_SERVER_BASE_UTF8_H_
#define AMQPGW_SERVER_BASE_UTF8_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace amqpgw {

// True when `s` is well-formed UTF-8: no overlong forms, no surrogates,
// nothing above U+10FFFF.
inline bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// The length (2..4) of the valid UTF-8 sequence starting at s[i], or 0 when
// there is none (s[i] is ASCII or starts no valid sequence).
inline int Utf8SequenceAt(absl::string_view s, size_t i) {
  for (int len = 2; len <= 4 && i + len <= s.size(); ++len) {
    if (IsValidUtf8(s.substr(i, len))) return len;
  }
  return 0;
}

// `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD.
inline std::string SanitizeUtf8(absl::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out.push_back(s[i++]);
    } else if (int len = Utf8SequenceAt(s, i); len > 0) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      ++i;
    }
  }
  return out;
}

}  // namespace amqpgw

#endif  // AMQPGW_SERVER_BASE_UTF8_H_
