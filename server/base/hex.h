// Hexadecimal digits, in one place: ids and trace context (lower case),
// percent-encoding (upper case), and decoding either case.
//
// Header-only, no dependencies beyond Abseil's string_view. Pure functions:
// any thread.
#ifndef AMQPGW_SERVER_BASE_HEX_H_
#define AMQPGW_SERVER_BASE_HEX_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace amqpgw {

inline constexpr char kLowerHexDigits[] = "0123456789abcdef";
inline constexpr char kUpperHexDigits[] = "0123456789ABCDEF";

// 0..15 for '0'-'9', 'a'-'f', 'A'-'F'; -1 for anything else.
constexpr int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte the two hex digits `hi` `lo` spell; -1 when either is not a hex
// digit.
constexpr int HexByte(char hi, char lo) {
  int h = HexValue(hi);
  int l = HexValue(lo);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

// Appends two hex digits per byte.
inline void AppendHex(absl::string_view bytes, std::string* out,
                      bool upper = false) {
  const char* digits = upper ? kUpperHexDigits : kLowerHexDigits;
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    out->push_back(digits[u >> 4]);
    out->push_back(digits[u & 15]);
  }
}

// Lower-case hex of `bytes`.
inline std::string HexEncode(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  AppendHex(bytes, &out);
  return out;
}

}  // namespace amqpgw

#endif  // AMQPGW_SERVER_BASE_HEX_H_
