// libFuzzer target for the grpc-web wire format (grpc_web_frame.h): request
// bodies in both content types, trailer blocks, grpc-timeout, content
// types. Besides "no crash, no sanitizer report", it checks round trips.
//
//   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang \
//     -DCMAKE_CXX_COMPILER=clang++ -DAMQPGW_FUZZ=ON
//   cmake --build build-fuzz -j2 --target grpc_web_frame_fuzzer
//   build-fuzz/server/web/grpc_web_frame_fuzzer -max_total_time=60
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/web/grpc_web_frame.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "round trip failed: %s\n", what);
    std::abort();
  }
}

absl::string_view StripSpaces(absl::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amqpgw::web;  // NOLINT
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr size_t kLimit = 1 << 16;

  // Binary bodies: whatever parses re-encodes to the same bytes.
  auto frames = ParseFrames(in, kLimit);
  if (frames.ok()) {
    std::string again;
    for (const Frame& f : *frames) AppendFrame(f.flags, f.payload, &again);
    Check(again == in, "ParseFrames/AppendFrame");
  }
  auto messages = ParseRequestMessages(in, kLimit);
  if (messages.ok()) {
    Check(frames.ok(),
          "ParseRequestMessages accepted what ParseFrames refused");
    std::string again;
    for (absl::string_view m : *messages) AppendFrame(kDataFrame, m, &again);
    Check(again == in, "ParseRequestMessages/AppendFrame");
  }

  // Text bodies: base64 chunks, then frames.
  auto decoded = Base64DecodeChunks(in);
  if (decoded.ok()) (void)ParseRequestMessages(*decoded, kLimit);
  auto round = Base64DecodeChunks(Base64Encode(in));
  Check(round.ok() && *round == in, "Base64Encode/Base64DecodeChunks");

  // Trailers: a block parses; a message survives encoding.
  (void)ParseTrailerBlock(in);
  std::vector<std::pair<std::string, std::string>> metadata = {
      {"x-k-bin", std::string(in)}};
  if (IsValidMetadataValue(in)) metadata.emplace_back("x-k", std::string(in));
  std::string block = TrailerBlock(13, in, metadata);
  auto lines = ParseTrailerBlock(block);
  Check(lines.ok() && lines->size() >= 1, "TrailerBlock parses");
  if (!StripSpaces(in).empty()) {
    bool found = false;
    for (const auto& [k, v] : *lines) {
      if (k == "grpc-message") {
        found = true;
        Check(PercentDecode(v) == StripSpaces(in), "grpc-message round trip");
      }
    }
    Check(found, "grpc-message present");
  }
  Check(PercentDecode(PercentEncode(in)) == in, "PercentEncode/Decode");

  (void)ParseGrpcTimeout(in);
  (void)ParseContentType(in);
  (void)IsValidMetadataKey(in);
  (void)IsValidMetadataValue(in);
  return 0;
}
