#include "geoip_ranges.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <numeric>
#include <sstream>

namespace streamtally::collector {

namespace {

std::uint16_t pack_country(std::string_view code) {
  const std::string normal = normalise_country_code(code);
  if (normal == kUnknown) return 0;
  return std::uint16_t((std::uint8_t(normal[0]) << 8) | std::uint8_t(normal[1]));
}

Result<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot open geoip file " + path};
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return Error{"cannot read geoip file " + path};
  return content.str();
}

}  // namespace

template <class Address>
void GeoipRanges::Table<Address>::sort_if_needed() {
  if (std::is_sorted(starts.begin(), starts.end())) return;
  std::vector<std::size_t> order(starts.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return starts[a] < starts[b]; });
  Table sorted;
  for (std::size_t i : order) {
    sorted.starts.push_back(starts[i]);
    sorted.ends.push_back(ends[i]);
    sorted.countries.push_back(countries[i]);
  }
  *this = std::move(sorted);
}

template <class Address>
std::uint16_t GeoipRanges::Table<Address>::find(Address ip) const {
  // The last range starting at or before ip is the only candidate (ranges don't overlap).
  const auto after = std::upper_bound(starts.begin(), starts.end(), ip);
  if (after == starts.begin()) return 0;
  const std::size_t i = std::size_t(after - starts.begin()) - 1;
  return ip <= ends[i] ? countries[i] : 0;
}

Result<std::unique_ptr<GeoipRanges>> GeoipRanges::load(const std::string& ipv4_path, const std::string& ipv6_path) {
  std::unique_ptr<GeoipRanges> ranges(new GeoipRanges());
  if (Status s = load_file(ipv4_path, *ranges); !s) return Error{s.error()};
  if (!ipv6_path.empty()) {
    if (std::ifstream probe(ipv6_path); probe) {
      if (Status s = load_file(ipv6_path, *ranges); !s) return Error{s.error()};
    }
  }
  ranges->v4_.sort_if_needed();
  ranges->v6_.sort_if_needed();
  return ranges;
}

// Hand-written line parser: ~660k lines must load well under a second, so no streams or
// regexes per line. Each line is either IPv4 "int,int,CC" or IPv6 "addr,addr,CC".
Status GeoipRanges::load_file(const std::string& path, GeoipRanges& into) {
  auto content = read_whole_file(path);
  if (!content) return Error{content.error()};
  const std::string_view text = *content;
  std::size_t line_number = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;

    const std::size_t c1 = line.find(',');
    const std::size_t c2 = c1 == std::string_view::npos ? c1 : line.find(',', c1 + 1);
    auto bad_line = [&] { return Error{path + ":" + std::to_string(line_number) + ": not a start,end,CC range"}; };
    if (c2 == std::string_view::npos) return bad_line();
    const std::string_view first = line.substr(0, c1);
    const std::string_view last = line.substr(c1 + 1, c2 - c1 - 1);
    const std::uint16_t country = pack_country(line.substr(c2 + 1));

    if (first.find(':') != std::string_view::npos) {
      const auto a = parse_ipv6(first);
      const auto b = parse_ipv6(last);
      if (!a || !b || *b < *a) return bad_line();
      into.v6_.starts.push_back(*a);
      into.v6_.ends.push_back(*b);
      into.v6_.countries.push_back(country);
    } else {
      std::uint32_t a = 0, b = 0;
      const auto ra = std::from_chars(first.data(), first.data() + first.size(), a);
      const auto rb = std::from_chars(last.data(), last.data() + last.size(), b);
      if (ra.ec != std::errc() || ra.ptr != first.data() + first.size() || rb.ec != std::errc() ||
          rb.ptr != last.data() + last.size() || b < a) {
        return bad_line();
      }
      into.v4_.starts.push_back(a);
      into.v4_.ends.push_back(b);
      into.v4_.countries.push_back(country);
    }
  }
  return Status::Ok();
}

std::string GeoipRanges::country(const IpAddress& ip) const {
  const std::uint16_t code = ip.is_v4 ? v4_.find(ip.v4) : v6_.find(ip.v6);
  if (code == 0) return kUnknown;
  return std::string{char(code >> 8), char(code & 0xff)};
}

}  // namespace streamtally::collector
