// IP address text -> a number the geo tables can search, plus the ranges that have no
// country by definition (private, loopback, link-local, documentation, multicast…).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace streamtally::collector {

using Uint128 = unsigned __int128;

struct IpAddress {
  bool is_v4 = false;
  std::uint32_t v4 = 0;  // host byte order, valid when is_v4
  Uint128 v6 = 0;        // valid when !is_v4
};

// Parses dotted IPv4 or IPv6 text ("[::1]" brackets and a "%zone" suffix are accepted).
// IPv4-mapped IPv6 (::ffff:a.b.c.d) comes back as IPv4, since the data files key it so.
std::optional<IpAddress> parse_ip(std::string_view text);

// True for addresses that are not globally routed, so no geo database can place them.
bool is_non_public(const IpAddress& ip);

// Helpers shared by the loaders and tests.
std::optional<std::uint32_t> parse_ipv4(std::string_view text);
std::optional<Uint128> parse_ipv6(std::string_view text);

}  // namespace streamtally::collector
