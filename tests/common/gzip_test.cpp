#include "streamtally/gzip.hpp"

#include <gtest/gtest.h>

using namespace streamtally;

TEST(Gzip, RoundTrip) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "{\"session_id\":\"" + std::to_string(i) + "\"}\n";
  const std::string packed = gzip_compress(text);
  ASSERT_FALSE(packed.empty());
  EXPECT_LT(packed.size(), text.size() / 4);
  auto back = gzip_decompress(packed, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, text);
}

TEST(Gzip, RefusesOutputBeyondTheLimit) {
  const std::string bomb = gzip_compress(std::string(50 << 20, '0'));  // ~50 KB packed
  GzipFailure why = GzipFailure::Corrupt;
  auto r = gzip_decompress(bomb, 1 << 20, &why);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("exceeds"), std::string::npos);
  EXPECT_EQ(why, GzipFailure::TooLarge);
}

TEST(Gzip, DetectsTruncatedAndCorruptInput) {
  const std::string packed = gzip_compress(std::string(100000, 'x') + "tail");
  GzipFailure why = GzipFailure::Corrupt;
  auto truncated = gzip_decompress(packed.substr(0, packed.size() / 2), 1 << 20, &why);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().find("truncated"), std::string::npos);
  EXPECT_EQ(why, GzipFailure::Truncated);
  auto garbage = gzip_decompress("this is not gzip at all", 1 << 20, &why);
  EXPECT_FALSE(garbage.ok());
  EXPECT_EQ(why, GzipFailure::Corrupt);
}

TEST(Gzip, ConcatenatedMembersAreOneBody) {
  const std::string first(70000, 'a'), second = "{\"b\":2}\n";
  auto r = gzip_decompress(gzip_compress(first, 1) + gzip_compress(second, 9), 1 << 20);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(*r, first + second);
}

TEST(Gzip, ATrailerThatLiesAboutTheSizeIsCorrupt) {
  std::string packed = gzip_compress(std::string(300000, 'y'), 1);
  packed[packed.size() - 4] ^= 0x01;  // ISIZE, the last four bytes
  auto r = gzip_decompress(packed, 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("corrupt"), std::string::npos) << r.error();
}
