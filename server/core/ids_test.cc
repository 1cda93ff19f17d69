#include "server/core/ids.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace amqpgw::core {
namespace {

TEST(IdsTest, UuidsAreVersion4AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    std::string u = NewUuid();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[8], '-');
    EXPECT_EQ(u[13], '-');
    EXPECT_EQ(u[14], '4');
    EXPECT_THAT(std::string("89ab"),
                ::testing::HasSubstr(std::string(1, u[19])));
    EXPECT_TRUE(seen.insert(u).second);
  }
}

TEST(IdsTest, SecureRandomHex) {
  std::string a = SecureRandomHex(16), b = SecureRandomHex(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace amqpgw::core
