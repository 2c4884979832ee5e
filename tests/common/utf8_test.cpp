#include "streamtally/utf8.hpp"

#include <gtest/gtest.h>

using streamtally::is_valid_utf8;
using streamtally::sanitize_utf8;

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8E\xA5"));  // é € 🎥
  EXPECT_TRUE(is_valid_utf8(""));
}

TEST(Utf8, RejectsIllFormedSequences) {
  EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // beyond U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

TEST(Utf8, SanitizeReplacesEachBadByteWithReplacementCharacter) {
  EXPECT_EQ(sanitize_utf8("a\xFF" "b", 100), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(sanitize_utf8("\xC3", 100), "\xEF\xBF\xBD");
}

TEST(Utf8, TruncatesOnACharacterBoundary) {
  const std::string euros = "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC";  // 3 x 3 bytes
  EXPECT_EQ(sanitize_utf8(euros, 8), "\xE2\x82\xAC\xE2\x82\xAC");
  EXPECT_EQ(sanitize_utf8(euros, 9), euros);
  EXPECT_EQ(sanitize_utf8(euros, 2), "");
}

TEST(Utf8, OneMegabyteOfGarbageBecomesBoundedValidText) {
  std::string junk(1 << 20, '\x80');
  const std::string out = sanitize_utf8(junk, 1024);
  EXPECT_LE(out.size(), 1024u);
  EXPECT_TRUE(is_valid_utf8(out));
  EXPECT_EQ(out.size(), 1023u);  // 341 replacement characters of 3 bytes
}
