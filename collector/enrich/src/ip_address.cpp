#include "ip_address.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace streamtally::collector {

namespace {

// inet_pton needs a NUL-terminated string; addresses are short, so a stack copy does.
template <std::size_t N>
bool copy_terminated(std::string_view text, std::array<char, N>& buffer) {
  if (text.empty() || text.size() >= N) return false;
  std::memcpy(buffer.data(), text.data(), text.size());
  buffer[text.size()] = '\0';
  return true;
}

struct Prefix4 {
  std::uint32_t network;
  int bits;
};

constexpr std::uint32_t v4(int a, int b, int c, int d) {
  return (std::uint32_t(a) << 24) | (std::uint32_t(b) << 16) | (std::uint32_t(c) << 8) | std::uint32_t(d);
}

// IANA IPv4 special-purpose registry (RFC 6890 and successors): none of these has a country.
constexpr Prefix4 kNonPublic4[] = {
    {v4(0, 0, 0, 0), 8},       {v4(10, 0, 0, 0), 8},     {v4(100, 64, 0, 0), 10}, {v4(127, 0, 0, 0), 8},
    {v4(169, 254, 0, 0), 16},  {v4(172, 16, 0, 0), 12},  {v4(192, 0, 0, 0), 24},  {v4(192, 0, 2, 0), 24},
    {v4(192, 88, 99, 0), 24},  {v4(192, 168, 0, 0), 16}, {v4(198, 18, 0, 0), 15}, {v4(198, 51, 100, 0), 24},
    {v4(203, 0, 113, 0), 24},  {v4(224, 0, 0, 0), 4},    {v4(240, 0, 0, 0), 4},
};

bool in_prefix(std::uint32_t ip, Prefix4 p) {
  const std::uint32_t mask = p.bits == 0 ? 0 : ~std::uint32_t(0) << (32 - p.bits);
  return (ip & mask) == p.network;
}

bool in_prefix(Uint128 ip, Uint128 network, int bits) {
  const Uint128 mask = bits == 0 ? 0 : ~Uint128(0) << (128 - bits);
  return (ip & mask) == network;
}

constexpr Uint128 hi(std::uint64_t top) { return Uint128(top) << 64; }

}  // namespace

std::optional<std::uint32_t> parse_ipv4(std::string_view text) {
  std::array<char, INET_ADDRSTRLEN> buffer{};
  in_addr addr{};
  if (!copy_terminated(text, buffer) || inet_pton(AF_INET, buffer.data(), &addr) != 1) return std::nullopt;
  return ntohl(addr.s_addr);
}

std::optional<Uint128> parse_ipv6(std::string_view text) {
  std::array<char, INET6_ADDRSTRLEN + 1> buffer{};
  in6_addr addr{};
  if (!copy_terminated(text, buffer) || inet_pton(AF_INET6, buffer.data(), &addr) != 1) return std::nullopt;
  Uint128 value = 0;
  for (unsigned char byte : addr.s6_addr) value = (value << 8) | byte;
  return value;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (const auto zone = text.find('%'); zone != std::string_view::npos) text = text.substr(0, zone);
  if (text.find(':') == std::string_view::npos) {
    const auto ip = parse_ipv4(text);
    if (!ip) return std::nullopt;
    return IpAddress{true, *ip, 0};
  }
  const auto ip = parse_ipv6(text);
  if (!ip) return std::nullopt;
  if (in_prefix(*ip, Uint128(0xffff) << 32, 96)) return IpAddress{true, std::uint32_t(*ip), 0};
  return IpAddress{false, 0, *ip};
}

bool is_non_public(const IpAddress& ip) {
  if (ip.is_v4) {
    for (const Prefix4& p : kNonPublic4) {
      if (in_prefix(ip.v4, p)) return true;
    }
    return false;
  }
  // IANA IPv6 special-purpose registry: unspecified/loopback/v4-compatible (::/96 holds both),
  // NAT64 well-known prefix, discard, documentation, ULA, link-local, site-local, multicast.
  return in_prefix(ip.v6, 0, 96) || in_prefix(ip.v6, hi(0x0064ff9b00000000ULL), 96) ||
         in_prefix(ip.v6, hi(0x0100000000000000ULL), 64) || in_prefix(ip.v6, hi(0x20010db800000000ULL), 32) ||
         in_prefix(ip.v6, hi(0xfc00000000000000ULL), 7) || in_prefix(ip.v6, hi(0xfe80000000000000ULL), 10) ||
         in_prefix(ip.v6, hi(0xfec0000000000000ULL), 10) || in_prefix(ip.v6, hi(0xff00000000000000ULL), 8);
}

}  // namespace streamtally::collector
