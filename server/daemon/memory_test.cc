#include "server/daemon/memory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

namespace amqpgw::daemon {
namespace {

// ASan and TSan replace malloc: glibc's heaps (what the trimmer looks at and
// trims) are not where the test's blocks live then.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kOwnMalloc = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kOwnMalloc = true;
#else
constexpr bool kOwnMalloc = false;
#endif
#else
constexpr bool kOwnMalloc = false;
#endif

// A burst of many small blocks, then most of them freed with a few kept
// between them: the freed memory lies in holes that only malloc_trim gives
// back (the pattern a drained memory-alarm burst leaves).
TEST(MemoryTrimmerTest, TrimsOnceAfterABurstDrainsAndNotAgain) {
  if (kOwnMalloc) GTEST_SKIP() << "the sanitizer's malloc is not glibc's";
  MemoryTrimmer::Options o;
  o.interval = absl::Hours(1);  // checks by hand only
  o.threshold = size_t{16} << 20;
  MemoryTrimmer trimmer(o);
  trimmer.CheckOnce();
  EXPECT_EQ(trimmer.stats().trims, 0u);

  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < 8192; ++i) {  // 128 MiB of 16 KiB blocks
    blocks.emplace_back(new char[16384]);
    std::memset(blocks.back().get(), i, 16384);  // resident
  }
  trimmer.CheckOnce();  // the peak
  EXPECT_EQ(trimmer.stats().trims, 0u);
  const size_t resident_at_peak = trimmer.stats().resident_bytes;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (i % 64 != 0) blocks[i].reset();
  }
  trimmer.CheckOnce();
  MemoryTrimmer::Stats s = trimmer.stats();
  EXPECT_EQ(s.trims, 1u);
  EXPECT_GT(s.released_bytes, 0u);
  EXPECT_LT(s.resident_bytes, resident_at_peak);
  // Nothing drained since: no second trim.
  trimmer.CheckOnce();
  EXPECT_EQ(trimmer.stats().trims, 1u);
}

TEST(MemoryTrimmerTest, MetricsRender) {
  MemoryTrimmer::Options o;
  o.interval = absl::Hours(1);
  MemoryTrimmer trimmer(o);
  trimmer.CheckOnce();
  metrics::Registry registry;
  RegisterMemoryMetrics(registry, &trimmer);
  std::string page = registry.Render();
  for (const char* family :
       {"amqpgw_memory_resident_bytes", "amqpgw_memory_malloc_free_bytes",
        "amqpgw_memory_trims_total", "amqpgw_memory_trimmed_bytes_total"}) {
    EXPECT_THAT(page, ::testing::HasSubstr(family));
  }
  EXPECT_GT(ResidentBytes(), 0u);
}

}  // namespace
}  // namespace amqpgw::daemon
