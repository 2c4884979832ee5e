// Country lookups against an independent oracle (tests/support/geoip_oracle.hpp): it reads
// Debian's tor-geoipdb files itself and answers each address by a linear scan over every
// range — no sorting, no binary search, nothing shared with the code under test.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "geoip_oracle.hpp"
#include "geoip_ranges.hpp"
#include "streamtally/collector/enrichment.hpp"

namespace streamtally::collector {
namespace {

using test::GeoipOracle;
using test::OracleRange;
using test::U128;
using test::v6_number;
using Oracle = GeoipOracle;
const std::string& kGeoip4 = test::kTorGeoip4;
const std::string& kGeoip6 = test::kTorGeoip6;

std::string v6_text(U128 n) {
  in6_addr a{};
  for (int i = 15; i >= 0; --i, n /= 256) a.s6_addr[i] = static_cast<unsigned char>(n % 256);
  char buffer[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &a, buffer, sizeof buffer);
  return buffer;
}

std::string v4_text(std::uint32_t n) {
  return std::to_string(n >> 24) + "." + std::to_string((n >> 16) & 255) + "." + std::to_string((n >> 8) & 255) + "." +
         std::to_string(n & 255);
}

// Non-public blocks, as CIDR text (the code under test holds them as numbers).
const char* kNonPublic4[] = {"0.0.0.0/8",      "10.0.0.0/8",     "100.64.0.0/10",   "127.0.0.0/8",
                             "169.254.0.0/16", "172.16.0.0/12",  "192.0.0.0/24",    "192.0.2.0/24",
                             "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",   "198.51.100.0/24",
                             "203.0.113.0/24", "224.0.0.0/4",    "240.0.0.0/4"};

bool non_public_v4(std::uint32_t ip) {
  for (const char* cidr : kNonPublic4) {
    const std::string s = cidr;
    const auto slash = s.find('/');
    in_addr a{};
    inet_pton(AF_INET, s.substr(0, slash).c_str(), &a);
    const int bits = std::stoi(s.substr(slash + 1));
    const std::uint32_t net = ntohl(a.s_addr);
    const std::uint32_t mask = ~std::uint32_t(0) << (32 - bits);
    if ((ip & mask) == net) return true;
  }
  return false;
}

class GeoipTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(std::filesystem::exists(kGeoip4) && std::filesystem::exists(kGeoip6)) << "install tor-geoipdb";
    oracle_ = new Oracle(Oracle::load());
    auto enricher = Enricher::open("", "");
    ASSERT_TRUE(enricher.ok()) << enricher.error();
    enricher_ = std::move(enricher).value().release();
  }
  static void TearDownTestSuite() {
    delete oracle_;
    delete enricher_;
  }
  static std::string country(const std::string& ip) { return enricher_->enrich(ip, "").country; }
  static Oracle* oracle_;
  static Enricher* enricher_;
};
Oracle* GeoipTest::oracle_ = nullptr;
Enricher* GeoipTest::enricher_ = nullptr;

TEST_F(GeoipTest, LoadsEveryRangeFastEnough) {
  const auto start = std::chrono::steady_clock::now();
  auto ranges = GeoipRanges::load(kGeoip4, kGeoip6);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(ranges.ok()) << ranges.error();
  std::cout << "[ figures  ] tor-geoipdb load: " << (*ranges)->ipv4_ranges() << " IPv4 + " << (*ranges)->ipv6_ranges()
            << " IPv6 ranges in " << ms << " ms\n";
  EXPECT_EQ((*ranges)->ipv4_ranges(), oracle_->v4.size());
  EXPECT_EQ((*ranges)->ipv6_ranges(), oracle_->v6.size());
  EXPECT_GT(oracle_->v4.size(), 100000u);
  EXPECT_GT(oracle_->v6.size(), 100000u);
}

TEST_F(GeoipTest, Ipv4MatchesLinearScan) {
  std::mt19937_64 random(42);
  std::vector<std::uint32_t> samples;
  for (int i = 0; i < 150; ++i) {  // range edges and middles, and the addresses just outside
    const OracleRange& r = oracle_->v4[random() % oracle_->v4.size()];
    const auto first = std::uint32_t(r.first), last = std::uint32_t(r.last);
    samples.insert(samples.end(), {first, last, first + (last - first) / 2, first - 1, last + 1});
  }
  for (int i = 0; i < 300; ++i) samples.push_back(std::uint32_t(random()));

  std::size_t checked = 0, with_country = 0;
  for (std::uint32_t ip : samples) {
    if (non_public_v4(ip)) continue;
    const std::string want = Oracle::scan(oracle_->v4, ip);
    EXPECT_EQ(country(v4_text(ip)), want) << v4_text(ip);
    EXPECT_EQ(country("::ffff:" + v4_text(ip)), want) << "IPv4-mapped " << v4_text(ip);
    ++checked;
    with_country += want != "unknown";
  }
  std::cout << "[ figures  ] IPv4: " << checked << " addresses checked, " << with_country << " with a country\n";
  EXPECT_GT(with_country, checked / 2);  // the sample really exercises countries, not just misses
}

TEST_F(GeoipTest, Ipv6MatchesLinearScan) {
  std::mt19937_64 random(7);
  std::vector<U128> samples;
  for (int i = 0; i < 120; ++i) {
    const OracleRange& r = oracle_->v6[random() % oracle_->v6.size()];
    samples.insert(samples.end(), {r.first, r.last, r.first + (r.last - r.first) / 2, r.first - 1, r.last + 1});
  }
  for (int i = 0; i < 200; ++i) {  // global unicast 2000::/3
    const U128 n = (U128(random()) << 64) | random();
    samples.push_back((n >> 3) | (U128(1) << 125));
  }
  std::size_t checked = 0, with_country = 0;
  for (U128 ip : samples) {
    const std::string text = v6_text(ip);
    // fc00::/7, fe80::/10, ff00::/8 and 2001:db8::/32 have no country by definition.
    const auto top16 = unsigned(ip >> 112);
    if ((top16 & 0xfe00) == 0xfc00 || (top16 & 0xffc0) == 0xfe80 || (top16 & 0xffc0) == 0xfec0 ||
        (top16 & 0xff00) == 0xff00 || unsigned(ip >> 96) == 0x20010db8u || (ip >> 96) == 0 ||
        (ip >> 64) == 0x0100000000000000ULL || (ip >> 32) == (U128(0x0064ff9bU) << 64)) {
      EXPECT_EQ(country(text), "unknown") << text;
      continue;
    }
    const std::string want = Oracle::scan(oracle_->v6, ip);
    EXPECT_EQ(country(text), want) << text;
    ++checked;
    with_country += want != "unknown";
  }
  std::cout << "[ figures  ] IPv6: " << checked << " addresses checked, " << with_country << " with a country\n";
  EXPECT_GT(with_country, checked / 3);
}

TEST_F(GeoipTest, NonPublicAndInvalidAddressesAreUnknown) {
  for (const char* ip : {"10.1.2.3", "192.168.1.10", "172.20.0.5", "127.0.0.1", "100.64.1.1", "169.254.3.4",
                         "0.0.0.0", "255.255.255.255", "224.0.0.251", "192.0.2.1", "::1", "::", "fe80::1%eth0",
                         "fd12:3456::1", "ff02::1", "2001:db8::1", "::ffff:10.0.0.1"}) {
    EXPECT_EQ(country(ip), "unknown") << ip;
  }
  for (const char* ip : {"", "-", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:80", "example.com", "::g", ":::1",
                         "1.2.3.4 ", " 1.2.3.4", "12345:1::"}) {
    EXPECT_EQ(country(ip), "unknown") << "'" << ip << "'";
  }
}

TEST_F(GeoipTest, BracketedIpv6IsAccepted) {
  const OracleRange& r = oracle_->v6[oracle_->v6.size() / 2];
  EXPECT_EQ(country("[" + v6_text(r.first) + "]"), Oracle::scan(oracle_->v6, r.first));
}

TEST(GeoipOpen, MissingOrMalformedFilesAreErrors) {
  EXPECT_FALSE(Enricher::open("/nonexistent/geoip", "").ok());
  EXPECT_FALSE(Enricher::open("/nonexistent/GeoLite2-Country.mmdb", "").ok());
  EXPECT_FALSE(Enricher::open("", "/nonexistent/regexes.yaml").ok());

  const std::string dir = ::testing::TempDir();
  const std::string bad = dir + "/geoip-bad";
  std::ofstream(bad) << "# comment\n16777216,16777471,AU\nnot,a range\n";
  const auto opened = Enricher::open(bad, "");
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().find(":3:"), std::string::npos) << opened.error();  // names the line

  const std::string not_mmdb = dir + "/fake.mmdb";
  std::ofstream(not_mmdb) << "this is not a MaxMind database";
  EXPECT_FALSE(Enricher::open(not_mmdb, "").ok());
}

}  // namespace
}  // namespace streamtally::collector
