#include "server/core/ids.h"

#include <sys/random.h>

#include <cstdint>
#include <cstring>

#include "absl/random/random.h"
#include "server/base/hex.h"

namespace amqpgw::core {

std::string SecureRandomHex(int bytes) {
  unsigned char buf[64];
  if (bytes > 64) bytes = 64;
  int got = 0;
  while (got < bytes) {
    ssize_t r = getrandom(buf + got, bytes - got, 0);
    if (r > 0) got += static_cast<int>(r);
  }
  std::string out;
  out.reserve(bytes * 2);
  AppendHex(absl::string_view(reinterpret_cast<const char*>(buf), bytes), &out);
  return out;
}

std::string NewUuid() {
  thread_local absl::BitGen gen;  // seeded from the OS
  uint64_t hi = absl::Uniform<uint64_t>(gen);
  uint64_t lo = absl::Uniform<uint64_t>(gen);
  hi = (hi & ~0xF000ull) | 0x4000ull;                  // version 4
  lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);  // variant 10
  // Formatted in place: one allocation (36 chars exceed the small-string
  // buffer), no per-character appends.
  char text[36];
  int pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text[pos++] = '-';
    uint64_t half = i < 8 ? hi : lo;
    unsigned byte = static_cast<unsigned>(half >> (56 - 8 * (i % 8))) & 0xFF;
    text[pos++] = kLowerHexDigits[byte >> 4];
    text[pos++] = kLowerHexDigits[byte & 15];
  }
  return std::string(text, sizeof(text));
}

}  // namespace amqpgw::core
