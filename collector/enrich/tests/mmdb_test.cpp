// The MaxMind DB reader against a database written here, byte by byte, from the published
// format (MaxMind DB File Format Specification 2.0): a search tree over IPv6 (IPv4 in ::/96),
// a data section of maps, the metadata map after "\xAB\xCD\xEFMaxMind.com". Debian ships no
// .mmdb file and no writer, and the expected countries are those the test put in.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "streamtally/collector/enrichment.hpp"

namespace streamtally::collector {
namespace {

using Bytes = std::string;

// ---- data section encoding ----
Bytes control(int type, std::size_t size) {
  // Sizes here stay below 29, so they fit the control byte itself.
  if (type <= 7) return Bytes(1, char((type << 5) | int(size)));
  return Bytes{char(size), char(type - 7)};  // extended type: type 0 + next byte
}
Bytes utf8(const std::string& s) { return control(2, s.size()) + s; }
Bytes unsigned_int(int type, uint64_t value, int bytes) {
  Bytes out = control(type, std::size_t(bytes));
  for (int i = bytes - 1; i >= 0; --i) out.push_back(char((value >> (8 * i)) & 0xff));
  return out;
}
Bytes map(const std::vector<std::pair<std::string, Bytes>>& entries) {
  Bytes out = control(7, entries.size());
  for (const auto& [key, value] : entries) out += utf8(key) + value;
  return out;
}
Bytes array(const std::vector<Bytes>& items) {
  Bytes out = control(11, items.size());
  for (const Bytes& item : items) out += item;
  return out;
}

// ---- search tree ----
struct Tree {
  struct Node {
    int64_t slot[2] = {-1, -1};  // >= 0: child node; <= -2: data offset (-2 - offset); -1: empty
  };
  std::vector<Node> nodes{Node{}};

  void insert(const std::vector<int>& bits, uint32_t data_offset) {
    std::size_t node = 0;
    for (std::size_t i = 0; i + 1 < bits.size(); ++i) {
      if (nodes[node].slot[bits[i]] == -1) {
        nodes[node].slot[bits[i]] = int64_t(nodes.size());
        nodes.push_back(Node{});  // may move the nodes: no references held across it
      }
      node = std::size_t(nodes[node].slot[bits[i]]);
    }
    nodes[node].slot[bits.back()] = -2 - int64_t(data_offset);
  }

  Bytes encode() const {  // 32-bit records, big-endian
    const uint64_t count = nodes.size();
    Bytes out;
    for (const Node& n : nodes) {
      for (int64_t slot : n.slot) {
        const uint64_t record = slot >= 0 ? uint64_t(slot) : slot == -1 ? count : count + 16 + uint64_t(-2 - slot);
        for (int i = 3; i >= 0; --i) out.push_back(char((record >> (8 * i)) & 0xff));
      }
    }
    return out;
  }
};

std::vector<int> bits_of(const std::string& ip, int prefix_length) {
  in6_addr a{};
  std::string text = ip.find(':') == std::string::npos ? "::" + ip : ip;  // IPv4 lives in ::/96
  if (ip.find(':') == std::string::npos) prefix_length += 96;
  EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), &a), 1) << text;
  std::vector<int> bits;
  for (int i = 0; i < prefix_length; ++i) bits.push_back((a.s6_addr[i / 8] >> (7 - i % 8)) & 1);
  return bits;
}

std::string write_database(const std::string& path) {
  Bytes data;
  Tree tree;
  auto add = [&](const std::string& network, int length, const Bytes& record) {
    tree.insert(bits_of(network, length), uint32_t(data.size()));
    data += record;
  };
  auto country = [](const std::string& code) { return map({{"country", map({{"iso_code", utf8(code)}})}}); };
  add("81.2.69.0", 24, country("GB"));
  add("2a02:ab00::", 32, country("DE"));
  add("5.5.5.0", 24, country("UK"));                                          // normalised to GB
  add("9.9.9.0", 24, map({{"registered_country", map({{"iso_code", utf8("CH")}})}}));  // no "country"
  add("1.1.1.0", 24, country("EU"));                                          // a continent: unknown
  add("2001:4860::", 32, country("us"));                                      // lower case in the data

  const Bytes metadata = map({
      {"node_count", unsigned_int(6, tree.nodes.size(), 4)},
      {"record_size", unsigned_int(5, 32, 2)},
      {"ip_version", unsigned_int(5, 6, 2)},
      {"database_type", utf8("StreamTally-Test-Country")},
      {"languages", array({utf8("en")})},
      {"binary_format_major_version", unsigned_int(5, 2, 2)},
      {"binary_format_minor_version", unsigned_int(5, 0, 2)},
      {"build_epoch", unsigned_int(9, 1790000000, 8)},
      {"description", map({{"en", utf8("test database")}})},
  });
  std::ofstream out(path, std::ios::binary);
  out << tree.encode() << Bytes(16, '\0') << data << "\xAB\xCD\xEFMaxMind.com" << metadata;
  return path;
}

TEST(MmdbReader, AnswersFromTheDatabase) {
  const std::string path = write_database(::testing::TempDir() + "/streamtally-test-country.mmdb");
  auto opened = Enricher::open(path, "");
  ASSERT_TRUE(opened.ok()) << opened.error();
  const Enricher& e = **opened;
  const std::map<std::string, std::string> expected = {
      {"81.2.69.142", "GB"},        {"81.2.69.0", "GB"},         {"81.2.69.255", "GB"},
      {"::ffff:81.2.69.142", "GB"}, {"81.2.70.1", "unknown"},    {"2a02:ab00::1", "DE"},
      {"2a02:ab00:ffff::", "DE"},   {"2a02:ac00::", "unknown"},  {"5.5.5.5", "GB"},
      {"9.9.9.9", "unknown"},       {"1.1.1.1", "unknown"},      {"2001:4860:4860::8888", "US"},
      {"8.8.8.8", "unknown"},       {"10.0.0.1", "unknown"},     {"not an ip", "unknown"},
  };
  for (const auto& [ip, country] : expected) EXPECT_EQ(e.enrich(ip, "").country, country) << ip;
}

TEST(MmdbReader, TruncatedDatabaseIsAnError) {
  const std::string path = write_database(::testing::TempDir() + "/streamtally-truncated.mmdb");
  std::string whole;
  {
    std::ifstream in(path, std::ios::binary);
    whole.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << whole.substr(0, whole.size() / 2);
  EXPECT_FALSE(Enricher::open(path, "").ok());
}

}  // namespace
}  // namespace streamtally::collector
