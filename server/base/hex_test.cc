#include "server/base/hex.h"

#include <gtest/gtest.h>

namespace amqpgw {
namespace {

TEST(HexTest, ValuesOfEitherCase) {
  EXPECT_EQ(HexValue('0'), 0);
  EXPECT_EQ(HexValue('9'), 9);
  EXPECT_EQ(HexValue('a'), 10);
  EXPECT_EQ(HexValue('F'), 15);
  for (char c : {'g', 'G', '/', ':', '@', '`', ' ', '\0', '\xff'}) {
    EXPECT_EQ(HexValue(c), -1) << static_cast<int>(c);
  }
  EXPECT_EQ(HexByte('f', 'F'), 255);
  EXPECT_EQ(HexByte('0', 'x'), -1);
}

TEST(HexTest, EncodesBothCasesAndRoundTrips) {
  std::string bytes("\x00\x01\x7f\x80\xfe\xff", 6);
  EXPECT_EQ(HexEncode(bytes), "00017f80feff");
  std::string upper;
  AppendHex(bytes, &upper, /*upper=*/true);
  EXPECT_EQ(upper, "00017F80FEFF");
  std::string back;
  for (size_t i = 0; i < upper.size(); i += 2) {
    back.push_back(static_cast<char>(HexByte(upper[i], upper[i + 1])));
  }
  EXPECT_EQ(back, bytes);
}

}  // namespace
}  // namespace amqpgw
