// The request parser of streamtallyhttpsink, against hand-written requests.
#include "http_request.hpp"

#include <gtest/gtest.h>

using streamtally::gst::parse_http_request;
using streamtally::gst::ParseStatus;
using streamtally::gst::percent_decode;

TEST(HttpRequestParser, ParsesPathQueryAndHeaders) {
  auto out = parse_http_request(
      "GET /live/cam%201.ts?token=a%2Bb&user=bob+smith&x HTTP/1.1\r\n"
      "Host: edge\r\nUser-Agent:  VLC/3.0.18 LibVLC/3.0.18 \r\nReferer: https://site/p?q=1\r\n"
      "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n\r\n",
      8192);
  ASSERT_EQ(out.status, ParseStatus::Complete) << out.error;
  EXPECT_EQ(out.request.method, "GET");
  EXPECT_EQ(out.request.path, "/live/cam 1.ts");
  EXPECT_EQ(out.request.version_minor, 1);
  EXPECT_EQ(out.request.header("user-agent"), "VLC/3.0.18 LibVLC/3.0.18");
  EXPECT_EQ(out.request.header("referer"), "https://site/p?q=1");
  EXPECT_EQ(out.request.query_arg("token"), "a+b");
  EXPECT_EQ(out.request.query_arg("user"), "bob smith");
  EXPECT_EQ(out.request.query_arg("x"), "");
  EXPECT_EQ(out.request.query_arg("missing"), std::nullopt);
  EXPECT_EQ(out.request.header("x-forwarded-for"), "198.51.100.1, 203.0.113.9");
}

TEST(HttpRequestParser, HeadLengthCountsTheBlankLine) {
  const std::string head = "GET / HTTP/1.0\n\n";
  auto out = parse_http_request(head + "trailing", 8192);
  ASSERT_EQ(out.status, ParseStatus::Complete);
  EXPECT_EQ(out.head_bytes, head.size());
  EXPECT_EQ(out.request.version_minor, 0);
}

TEST(HttpRequestParser, WaitsForTheBlankLine) {
  EXPECT_EQ(parse_http_request("GET / HTTP/1.1\r\nHost: a\r\n", 8192).status, ParseStatus::Incomplete);
  EXPECT_EQ(parse_http_request("", 8192).status, ParseStatus::Incomplete);
}

TEST(HttpRequestParser, BoundsTheHeadSize) {
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(300, 'x') + "\r\n";
  EXPECT_EQ(parse_http_request(big, 256).status, ParseStatus::TooLarge) << "no blank line yet, already too big";
  EXPECT_EQ(parse_http_request(big + "\r\n", 256).status, ParseStatus::TooLarge);
  EXPECT_EQ(parse_http_request(big + "\r\n", 1024).status, ParseStatus::Complete);
}

TEST(HttpRequestParser, RejectsMalformedRequests) {
  for (const char* bad : {
           "GARBAGE\r\n\r\n",
           "GET /\r\n\r\n",
           "GET / HTTP/2.0\r\n\r\n",
           "GET http://host/ HTTP/1.1\r\nHost: a\r\n\r\n",
           "GET / HTTP/1.1\r\n\r\n",  // HTTP/1.1 needs Host
           "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
           "GET / HTTP/1.1\r\nHost a\r\n\r\n",
           "GET / HTTP/1.1\r\nBad Name: a\r\nHost: a\r\n\r\n",
           "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
           "GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
           "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
       }) {
    EXPECT_EQ(parse_http_request(bad, 8192).status, ParseStatus::Malformed) << bad;
  }
}

TEST(HttpRequestParser, PercentDecoding) {
  EXPECT_EQ(percent_decode("a%2fb%2F", false), "a/b/");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("%4", false), std::nullopt);
  EXPECT_EQ(percent_decode("%", false), std::nullopt);
  EXPECT_EQ(percent_decode("%g0", false), std::nullopt);
}
