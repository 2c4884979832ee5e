#include "session_dataset.hpp"

#include <algorithm>
#include <array>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "geoip_oracle.hpp"

namespace streamtally::test {
namespace {



struct Player {
  const char* user_agent;
  const char* device_type;
  const char* os;
  const char* browser;
};
// Real player user-agents and what they are (from the players' documentation).
constexpr std::array<Player, 8> kPlayers{{
    {"VLC/3.0.18 LibVLC/3.0.18", "unknown", "unknown", "VLC"},
    {"Lavf/59.27.100", "unknown", "unknown", "FFmpeg"},
    {"AppleCoreMedia/1.0.0.20E247 (iPhone; U; CPU OS 16_4 like Mac OS X; en_us)", "mobile", "iOS", "AppleCoreMedia"},
    {"MyTV/1.4.2 (Linux;Android 12) ExoPlayerLib/2.18.1", "unknown", "Android", "ExoPlayer"},
    {"Roku/DVP-12.5 (12.5.0.4178-46)", "tv", "Roku", "Roku"},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
     "Safari/537.36 Edg/119.0.2151.72",
     "desktop", "Windows", "Edge"},
    {"Wirecast/FM 1.0 (compatible; FMSc/1.0)", "unknown", "unknown", "Wirecast"},
    {"GStreamer/1.22.0", "unknown", "unknown", "GStreamer"},
}};

constexpr std::array<const char*, 8> kIps{"8.8.8.8",       "81.2.69.160", "193.0.6.139",          "202.12.29.205",
                                          "2001:4860:4860::8888", "2a00:1450:4001:80b::200e", "10.1.2.3", "77.88.8.8"};
constexpr std::array<const char*, 5> kStreams{"live/a", "live/b", "vod/c", "live/ünïcode",
                                              "x'); DROP TABLE sessions;--"};
constexpr std::array<const char*, 3> kServers{"edge-1", "edge-2", "edge-3"};
constexpr std::array<const char*, 4> kReferers{"", "https://www.example.com/watch?v=1", "http://Player.Example.org:8080/p",
                                               "https://example.com/"};
constexpr std::array<const char*, 5> kPlayProtocols{"hls", "dash", "rtmp", "http-flv", "webrtc"};
constexpr std::array<const char*, 3> kPublishProtocols{"rtmp", "srt", "rtsp"};

std::string referer_domain_of(const std::string& r) {
  const auto scheme = r.find("://");
  if (scheme == std::string::npos) return "";
  std::string host = r.substr(scheme + 3);
  host = host.substr(0, host.find_first_of("/?#"));
  host = host.substr(0, host.find(':'));
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  return host;
}


}  // namespace

std::string RawSession::dimension(const std::string& name) const {
  if (name == "stream") return stream;
  if (name == "server") return server_id;
  if (name == "host") return host;
  if (name == "type") return type;
  if (name == "protocol") return protocol;
  if (name == "country") return country;
  if (name == "device_type") return device_type;
  if (name == "os") return os;
  if (name == "browser") return browser;
  if (name == "user_id") return user_id.value_or("");
  if (name == "referer_domain") return referer_domain;
  if (name.rfind("tag.", 0) == 0) {
    auto it = tags.find(name.substr(4));
    return it == tags.end() ? "" : it->second;
  }
  return "?";
}

std::string record_line(const RawSession& s, std::size_t i) {
  const RawUpdate& u = s.updates[i];
  nlohmann::json j{{"server_id", s.server_id},
                   {"host", s.host},
                   {"session_id", s.session_id},
                   {"seq", u.seq},
                   {"state", u.ended_at ? "closed" : "open"},
                   {"type", s.type},
                   {"protocol", s.protocol},
                   {"stream", s.stream},
                   {"client_ip", s.client_ip},
                   {"user_agent", s.user_agent},
                   {"referer", s.referer},
                   {"user_id", s.user_id ? nlohmann::json(*s.user_id) : nlohmann::json(nullptr)},
                   {"token", s.token ? nlohmann::json(*s.token) : nlohmann::json(nullptr)},
                   {"started_at", s.started_at},
                   {"updated_at", u.updated_at},
                   {"ended_at", u.ended_at ? nlohmann::json(*u.ended_at) : nlohmann::json(nullptr)},
                   {"bytes_in", u.bytes_in},
                   {"bytes_out", u.bytes_out},
                   {"end_reason", u.ended_at ? nlohmann::json("client") : nlohmann::json(nullptr)}};
  if (!s.tags.empty()) j["tags"] = s.tags;
  return j.dump();
}

std::vector<RawSession> generate_sessions(uint32_t seed, int count, int64_t t0, int64_t span_ms) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  std::set<int64_t> starts;
  std::vector<RawSession> out;
  for (int i = 0; i < count; ++i) {
    RawSession s;
    const int server = static_cast<int>(uniform(0, kServers.size() - 1));
    s.server_id = std::string("srv-") + std::to_string(server);
    s.host = kServers[server];
    s.session_id = "session-" + std::to_string(seed) + "-" + std::to_string(i);
    const bool publish = uniform(0, 99) < 15;
    s.type = publish ? "publish" : "play";
    s.protocol = publish ? kPublishProtocols[uniform(0, kPublishProtocols.size() - 1)]
                         : kPlayProtocols[uniform(0, kPlayProtocols.size() - 1)];
    s.stream = kStreams[uniform(0, kStreams.size() - 1)];
    s.client_ip = kIps[uniform(0, kIps.size() - 1)];
    const Player& player = kPlayers[uniform(0, kPlayers.size() - 1)];
    s.user_agent = player.user_agent;
    s.device_type = player.device_type, s.os = player.os, s.browser = player.browser;
    s.referer = kReferers[uniform(0, kReferers.size() - 1)];
    s.referer_domain = referer_domain_of(s.referer);
    if (uniform(0, 99) < 60) s.user_id = "user-" + std::to_string(uniform(1, 12));
    if (uniform(0, 99) < 50) s.token = "tok" + std::to_string(uniform(1, 1000));
    if (uniform(0, 99) < 40) s.tags["event"] = uniform(0, 1) ? "final" : "semi";
    if (uniform(0, 99) < 20) s.tags["tier"] = "gold";
    s.country = country_by_linear_scan(s.client_ip);
    do s.started_at = t0 + uniform(0, span_ms - 1);
    while (!starts.insert(s.started_at).second);

    const int shape = static_cast<int>(uniform(0, 99));
    const bool closed = uniform(0, 99) < 80;
    int64_t t = s.started_at, seq = 0, in = 0, out_bytes = 0;
    const bool huge = uniform(0, 99) < 3;  // beyond 2^53 and with 128-bit products
    if (shape < 5) {  // zero-length: opened and closed at the same instant
      s.updates.push_back({0, t, t, 0, uniform(0, 500)});
    } else {
      const int updates = static_cast<int>(uniform(1, 7));
      const bool long_gaps = shape < 12;  // gaps of hours (recovered sessions, long interims)
      for (int k = 0; k < updates; ++k) {
        t += long_gaps ? uniform(600'000, 12 * 3'600'000) : uniform(5'000, 95'000);
        in += publish ? uniform(100'000, 5'000'000) : uniform(0, 2'000);
        out_bytes += huge ? uniform(1'000'000'000'000'000LL, 1'300'000'000'000'000LL)
                          : (publish ? uniform(0, 5'000) : uniform(50'000, 9'000'000));
        RawUpdate u{seq, t, std::nullopt, in, out_bytes};
        if (k + 1 == updates && closed) u.ended_at = t - uniform(0, std::min<int64_t>(900, t - s.started_at));
        s.updates.push_back(u);
        seq += uniform(0, 99) < 20 ? 2 : 1;  // the edge may skip a seq (lost interim)
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string country_by_linear_scan(const std::string& ip) {
  static std::map<std::string, std::string> known;  // the files are large: scan once per address
  if (auto it = known.find(ip); it != known.end()) return it->second;
  static const GeoipOracle oracle = GeoipOracle::load();
  return known[ip] = oracle.country(ip);
}

// ---- Oracle -------------------------------------------------------------------

bool Oracle::matches(const RawSession& s, const std::vector<Where>& where) const {
  for (const Where& w : where)
    if (std::find(w.values.begin(), w.values.end(), s.dimension(w.dimension)) == w.values.end()) return false;
  return true;
}

std::vector<const RawSession*> Oracle::open_sessions(int64_t from, int64_t to) const {
  std::vector<const RawSession*> out;
  for (const RawSession& s : sessions_)
    if (s.started_at <= to && s.end() >= from) out.push_back(&s);
  return out;
}

// Each interval (a, b] of the chain carries its byte delta spread evenly over time,
// in integer shares: the part in [x, y) is C(y) - C(x) with C(p) = floor(D * (p - a) / (b - a)).
// An interval with b <= a puts everything at b.
int64_t Oracle::bytes_in_range(const RawSession& s, bool out, int64_t from, int64_t to) {
  int64_t total = 0, a = s.started_at, previous = 0;
  for (const RawUpdate& u : s.updates) {
    const int64_t b = u.t(), value = out ? u.bytes_out : u.bytes_in, d = value - previous;
    if (b <= a) {
      if (b >= from && b < to) total += d;
    } else {
      const int64_t x = std::max(a, from), y = std::min(b, to);
      if (x < y) {
        auto c = [&](int64_t p) {
          __int128 num = static_cast<__int128>(d) * (p - a), q = num / (b - a);
          if (q * (b - a) > num) --q;
          return static_cast<int64_t>(q);
        };
        total += c(y) - c(x);
      }
    }
    a = b, previous = value;
  }
  return total;
}

int64_t Oracle::viewtime_ms_in_range(const RawSession& s, int64_t from, int64_t to) {
  int64_t total = 0, a = s.started_at;
  for (const RawUpdate& u : s.updates) {
    const int64_t b = u.t();
    if (b <= a) {
      if (b >= from && b < to) total += b - a;
    } else {
      total += std::max<int64_t>(0, std::min(b, to) - std::max(a, from));
    }
    a = b;
  }
  return total;
}

// Open at instant t: start <= t < end, or a zero-length session at exactly t.
int64_t Oracle::max_open(const std::vector<const RawSession*>& sessions, int64_t from, int64_t to) {
  std::vector<int64_t> candidates{from};
  for (const RawSession* s : sessions)
    if (s->started_at >= from && s->started_at < to) candidates.push_back(s->started_at);
  int64_t best = 0;
  for (int64_t t : candidates) {
    int64_t open = 0;
    for (const RawSession* s : sessions) {
      const int64_t e = s->end();
      if ((s->started_at <= t && t < e) || (s->started_at == t && e == t)) ++open;
    }
    best = std::max(best, open);
  }
  return best;
}

std::map<Key, MetricValues> Oracle::events(const std::vector<std::string>& dims,
                                           const std::vector<std::string>& metrics, const std::vector<Where>& where,
                                           int64_t from, int64_t to) const {
  std::map<Key, std::vector<const RawSession*>> groups;
  for (const RawSession& s : sessions_) {
    if (!(s.started_at < to && s.end() >= from) || !matches(s, where)) continue;
    Key key;
    for (const auto& d : dims) key.push_back(s.dimension(d));
    groups[key].push_back(&s);
  }
  std::map<Key, MetricValues> result;
  for (const auto& [key, members] : groups) {
    MetricValues& v = result[key];
    for (const auto& m : metrics) {
      int64_t value = 0;
      if (m == "sessions" || m == "ccu") {
        value = static_cast<int64_t>(members.size());
      } else if (m == "views") {
        for (auto* s : members) value += s->type == "play" && s->started_at >= from && s->started_at < to;
      } else if (m == "unique_viewers") {
        std::set<std::pair<std::string, std::string>> viewers;
        for (auto* s : members) viewers.insert({s->client_ip, s->user_agent});
        value = static_cast<int64_t>(viewers.size());
      } else if (m == "viewtime") {
        for (auto* s : members) value += viewtime_ms_in_range(*s, from, to);
        v[m] = static_cast<double>(value) / 1000.0;
        continue;
      } else if (m == "bytes_out" || m == "bytes_in") {
        for (auto* s : members) value += bytes_in_range(*s, m == "bytes_out", from, to);
      } else if (m == "max_ccu") {
        value = max_open(members, from, to);
      }
      v[m] = value;
    }
  }
  return result;
}

std::map<Key, std::map<std::string, std::vector<nlohmann::json>>> Oracle::timeseries(
    const std::vector<std::string>& dims, const std::vector<std::string>& metrics, const std::vector<Where>& where,
    int64_t first, int64_t length, int64_t count) const {
  std::map<Key, std::map<std::string, std::vector<nlohmann::json>>> result;
  const auto groups_total = events(dims, {"sessions"}, where, first, first + length * count);
  for (const auto& [key, unused] : groups_total) {
    // Restrict to this group with an extra where per dimension.
    std::vector<Where> w = where;
    for (std::size_t i = 0; i < dims.size(); ++i) w.push_back({dims[i], {key[i]}});
    auto& series = result[key];
    for (const auto& m : metrics)
      series[m].assign(static_cast<std::size_t>(count), m == "viewtime" ? nlohmann::json(0.0) : nlohmann::json(0));
    for (int64_t b = 0; b < count; ++b) {
      const int64_t from = first + b * length, to = from + length;
      std::vector<std::string> plain_metrics;
      for (const auto& m : metrics) plain_metrics.push_back(m == "ccu" ? "max_ccu" : m);
      const auto bucket = events(dims, plain_metrics, w, from, to);
      if (bucket.empty()) continue;
      const MetricValues& v = bucket.begin()->second;
      for (std::size_t i = 0; i < metrics.size(); ++i)
        series[metrics[i]][static_cast<std::size_t>(b)] = v.at(plain_metrics[i]);
    }
  }
  return result;
}

}  // namespace streamtally::test
