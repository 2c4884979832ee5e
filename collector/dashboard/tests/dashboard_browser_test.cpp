// The dashboard in a real browser against a real collector: records are posted to
// streamtally-collector, Debian's chromium loads the page headless and dumps the DOM, and the
// test checks that the DOM shows the posted streams and the numbers computed here from the
// posted records (sums, counts, a concurrency sweep) — not numbers read back from the API.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>

#include "test_support.hpp"

namespace streamtally::test {
namespace {

using Clock = std::chrono::system_clock;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

int64_t month_start_utc(int64_t ms) {
  const std::time_t seconds = ms / 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  utc.tm_mday = 1;
  utc.tm_hour = utc.tm_min = utc.tm_sec = 0;
  return int64_t(timegm(&utc)) * 1000;
}

struct Session {
  std::string stream, type, client_ip, user_agent;
  int64_t started_at = 0, ended_at = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string ndjson(const std::vector<Session>& sessions) {
  std::string out;
  std::mt19937_64 random(std::random_device{}());
  for (const Session& s : sessions) {
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "%08x-%04x-4%03x-8%03x-%012llx", unsigned(random()), unsigned(random() & 0xffff),
                  unsigned(random() & 0xfff), unsigned(random() & 0xfff),
                  static_cast<unsigned long long>(random() & 0xffffffffffffULL));
    out += "{\"server_id\":\"edge-test-1\",\"host\":\"edge1.test\",\"session_id\":\"" + std::string(uuid) +
           "\",\"seq\":2,\"state\":\"closed\",\"type\":" + json_string(s.type) +
           ",\"protocol\":\"hls\",\"stream\":" + json_string(s.stream) + ",\"client_ip\":" + json_string(s.client_ip) +
           ",\"user_agent\":" + json_string(s.user_agent) +
           ",\"referer\":\"\",\"user_id\":null,\"token\":null,\"started_at\":" + std::to_string(s.started_at) +
           ",\"updated_at\":" + std::to_string(s.ended_at) + ",\"ended_at\":" + std::to_string(s.ended_at) +
           ",\"bytes_in\":" + std::to_string(s.bytes_in) + ",\"bytes_out\":" + std::to_string(s.bytes_out) +
           ",\"end_reason\":\"client\"}\n";
  }
  return out;
}

// Country of an IPv4 address by a plain scan of tor-geoipdb (the oracle; "??" = unknown).
std::string country_by_scan(const std::string& dotted) {
  unsigned a, b, c, d;
  if (std::sscanf(dotted.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) != 4) return "unknown";
  const uint64_t ip = (uint64_t(a) << 24) | (b << 16) | (c << 8) | d;
  std::ifstream in("/usr/share/tor/geoip");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto c1 = line.find(','), c2 = line.find(',', c1 + 1);
    if (std::stoull(line.substr(0, c1)) <= ip && ip <= std::stoull(line.substr(c1 + 1, c2 - c1 - 1))) {
      const std::string cc = line.substr(c2 + 1);
      return cc == "??" ? "unknown" : cc;
    }
  }
  return "unknown";
}

// Highest number of sessions open at one instant; an end and a start at the same instant
// do not overlap (ends first).
int max_concurrency(const std::vector<Session>& sessions) {
  std::vector<std::pair<int64_t, int>> events;
  for (const Session& s : sessions) {
    events.emplace_back(s.started_at, +1);
    events.emplace_back(s.ended_at, -1);
  }
  std::sort(events.begin(), events.end());  // (t, -1) sorts before (t, +1)
  int open = 0, best = 0;
  for (const auto& [t, delta] : events) best = std::max(best, open += delta);
  return best;
}

class Collector {
 public:
  explicit Collector(const std::vector<std::string>& extra_args) : port_(free_port()) {
    std::vector<std::string> argv = {STREAMTALLY_COLLECTOR_BIN, "--listen", "127.0.0.1:" + std::to_string(port_),
                                     "--store", "sqlite:" + dir_.file("collector.db"), "--ingest-token", "ingest-secret"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<ChildProcess>(ChildProcess::Options{argv, {}, dir_.file("stdout"), dir_.file("stderr"), "", ""});
  }
  bool ready() { return wait_for_port(port_, std::chrono::seconds(20)); }
  std::string url(const std::string& path = "") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::string log() const { return read_file(dir_.file("stderr")); }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<ChildProcess> process_;
};

// Chromium's DOM after the page's scripts ran (virtual time: no real waiting for timers).
std::string dump_dom(const TempDir& dir, const std::string& url, const std::string& screenshot = "") {
  std::vector<std::string> argv = {STREAMTALLY_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                   "--no-first-run", "--user-data-dir=" + dir.file("chromium-profile"),
                                   "--virtual-time-budget=8000"};
  if (screenshot.empty()) {
    argv.push_back("--dump-dom");
  } else {
    argv.insert(argv.end(), {"--window-size=1400,2400", "--screenshot=" + screenshot});
  }
  argv.push_back(url);
  const CommandResult result = run_command(argv, std::chrono::seconds(90));
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return result.out;
}

// The HTML of the element that starts with `opening` (up to the end tag `closing`).
std::string section(const std::string& dom, const std::string& opening, const std::string& closing) {
  const auto start = dom.find(opening);
  if (start == std::string::npos) return "";
  const auto end = dom.find(closing, start);
  return dom.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::vector<std::pair<std::string, double>> top_rows(const std::string& dom, const std::string& of, const std::string& by) {
  const std::string box = section(dom, "data-of=\"" + of + "\" data-by=\"" + by + "\"", "</table>");
  std::vector<std::pair<std::string, double>> rows;
  const std::regex row(R"re(<td class="key">([^<]*)</td><td class="value" data-value="([0-9.eE+-]+)")re");
  for (auto it = std::sregex_iterator(box.begin(), box.end(), row); it != std::sregex_iterator(); ++it) {
    rows.emplace_back((*it)[1], std::stod((*it)[2]));
  }
  return rows;
}

std::map<std::string, int> bar_counts(const std::string& dom, const std::string& container_id) {
  const std::string box = section(dom, "id=\"" + container_id + "\"", "</h3>");
  std::map<std::string, int> counts;
  const std::regex bar(R"re(class="bar-row" data-key="([^"]*)" data-value="([0-9]+)")re");
  for (auto it = std::sregex_iterator(box.begin(), box.end(), bar); it != std::sregex_iterator(); ++it) {
    counts[(*it)[1]] = std::stoi((*it)[2]);
  }
  return counts;
}

std::string card_value(const std::string& dom, const std::string& kind) {
  const std::string card = section(dom, "data-kind=\"" + kind + "\"", "</article>");
  std::smatch m;
  return std::regex_search(card, m, std::regex(R"re(class="big" data-value="([0-9]+)")re")) ? m[1].str() : "";
}

class DashboardInBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(STREAMTALLY_CHROMIUM).empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup-deps.sh)";
    now_ = now_ms();
    // Month-to-date and top-10 cover this calendar month: the sessions must lie inside it.
    if (now_ - month_start_utc(now_) < 30 * 60 * 1000) GTEST_SKIP() << "too close to the start of a month";

    std::mt19937 random(std::random_device{}());
    const std::string tag = std::to_string(random() % 1000000);
    streams_ = {"qa/alpha-" + tag, "qa/bravo-" + tag, "qa/charlie-" + tag};
    const std::vector<std::string> ips = {"8.8.8.8", "81.2.69.142", "133.242.0.3"};
    // Four players whose device types the enrichment table (collector/enrich/tests) pins down.
    const std::vector<std::pair<std::string, std::string>> players = {
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.1 Mobile/15E148 Safari/604.1", "mobile"},
        {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
         "Safari/537.36", "desktop"},
        {"Roku/DVP-12.5 (12.5.0.4178-46)", "tv"},
        {"Lavf/58.76.100", "unknown"},
    };
    const int64_t base = now_ - 20 * 60 * 1000;
    for (int i = 0; i < 30; ++i) {
      Session s;
      s.stream = streams_[std::size_t(i % 7 < 4 ? 0 : i % 7 < 6 ? 1 : 2)];  // alpha 4/7, bravo 2/7, charlie 1/7
      s.type = "play";
      s.client_ip = ips[std::size_t(i) % ips.size()];
      s.user_agent = players[std::size_t(i) % players.size()].first;
      s.started_at = base + i * 20 * 1000;
      s.ended_at = s.started_at + 60 * 1000 + (i % 5) * 30 * 1000;
      s.bytes_out = 1000000ULL * uint64_t(i + 1) + 12345ULL * uint64_t(i);
      plays_.push_back(s);
      device_views_[players[std::size_t(i) % players.size()].second]++;
      ip_views_[s.client_ip]++;
    }
    for (int k = 0; k < 2; ++k) {
      Session s;
      s.stream = streams_[std::size_t(k)];
      s.type = "publish";
      s.client_ip = "81.2.69.142";
      s.user_agent = "FMLE/3.0 (compatible; FMSc/1.0)";
      s.started_at = base - 60 * 1000;
      s.ended_at = now_ - 60 * 1000;
      s.bytes_in = 50000000ULL * uint64_t(k + 1) + 777;
      publishes_.push_back(s);
    }
  }

  void post_all(Collector& collector) {
    std::vector<Session> all = plays_;
    all.insert(all.end(), publishes_.begin(), publishes_.end());
    const HttpResponse r = http_request("POST", collector.url("/v1/batches"), ndjson(all),
                                        {{"Content-Type", "application/x-ndjson"},
                                         {"Authorization", "Bearer ingest-secret"},
                                         {"Idempotency-Key", "6f1c2b8e-4a53-4c1e-9d1e-0b7f3a9c1d22"}});
    ASSERT_EQ(r.status, 200) << r.body << collector.log();
    ASSERT_NE(r.body.find("\"accepted\":" + std::to_string(all.size())), std::string::npos) << r.body;
  }

  int64_t now_ = 0;
  std::vector<std::string> streams_;
  std::vector<Session> plays_, publishes_;
  std::map<std::string, int> device_views_, ip_views_;
};

TEST_F(DashboardInBrowser, ShowsWhatWasPosted) {
  Collector collector({});
  ASSERT_TRUE(collector.ready()) << collector.log();
  post_all(collector);

  const std::string dom = dump_dom(collector.dir(), collector.url("/"));
  ASSERT_NE(dom.find("data-loaded=\"true\""), std::string::npos) << "the page never finished loading";
  EXPECT_NE(dom.find("id=\"status\" class=\"status\" role=\"status\"></span>"), std::string::npos)
      << "the page reported an error: " << section(dom, "id=\"status\"", "</span>");

  // Month to date: playout = bytes sent to viewers, ingest = bytes received from publishers.
  uint64_t playout = 0, ingest = 0;
  for (const Session& s : plays_) playout += s.bytes_out;
  for (const Session& s : publishes_) ingest += s.bytes_in;
  EXPECT_EQ(card_value(dom, "playout"), std::to_string(playout));
  EXPECT_EQ(card_value(dom, "ingest"), std::to_string(ingest));
  EXPECT_EQ(card_value(dom, "total"), std::to_string(playout + ingest));

  // Usage trend: this month's daily bars add up to this month's bytes.
  double trend_sum = 0;
  const std::regex bar(R"re(class="bar-current"[^>]* data-value="([0-9.eE+]+)")re");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), bar); it != std::sregex_iterator(); ++it) {
    trend_sum += std::stod((*it)[1]);
  }
  EXPECT_DOUBLE_EQ(trend_sum, double(playout + ingest));

  // Top 10 streams by output traffic and by viewtime, in order, with their values.
  std::map<std::string, double> bytes_by_stream, viewtime_by_stream;
  for (const Session& s : plays_) {
    bytes_by_stream[s.stream] += double(s.bytes_out);
    viewtime_by_stream[s.stream] += double(s.ended_at - s.started_at) / 1000.0;
  }
  auto ranked = [](const std::map<std::string, double>& totals) {
    std::vector<std::pair<std::string, double>> v(totals.begin(), totals.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    return v;
  };
  const auto shown_bytes = top_rows(dom, "stream", "bytes_out");
  const auto want_bytes = ranked(bytes_by_stream);
  ASSERT_GE(shown_bytes.size(), want_bytes.size()) << section(dom, "id=\"top\"", "</section>");
  for (std::size_t i = 0; i < want_bytes.size(); ++i) {
    EXPECT_EQ(shown_bytes[i].first, want_bytes[i].first);
    EXPECT_DOUBLE_EQ(shown_bytes[i].second, want_bytes[i].second) << want_bytes[i].first;
  }
  // Viewtime: the publishers' sessions may count too (they are sessions of the stream); the
  // play-only stream (charlie) and the ranking among play time must hold either way.
  const auto shown_viewtime = top_rows(dom, "stream", "viewtime");
  std::map<std::string, double> shown_viewtime_map(shown_viewtime.begin(), shown_viewtime.end());
  EXPECT_NEAR(shown_viewtime_map[streams_[2]], viewtime_by_stream[streams_[2]], 0.001);
  for (const std::string& stream : streams_) EXPECT_TRUE(shown_viewtime_map.count(stream)) << stream;

  // Servers: one edge carries everything.
  const auto servers = top_rows(dom, "server", "bytes_out");
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_EQ(servers[0].first, "edge-test-1");
  EXPECT_DOUBLE_EQ(servers[0].second, double(playout));

  // Views by country (countries by a plain scan of tor-geoipdb) and by device type.
  std::map<std::string, int> want_countries;
  for (const auto& [ip, views] : ip_views_) want_countries[country_by_scan(ip)] += views;
  EXPECT_EQ(bar_counts(dom, "by-country"), want_countries);
  EXPECT_EQ(bar_counts(dom, "by-device"), device_views_);

  // CCU chart: the highest "Viewers: N" of any bucket is the highest concurrency of the plays.
  int highest_shown = -1;
  const std::regex viewers(R"(Viewers: ([0-9,]+))");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), viewers); it != std::sregex_iterator(); ++it) {
    std::string digits = (*it)[1];
    digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
    highest_shown = std::max(highest_shown, std::stoi(digits));
  }
  EXPECT_EQ(highest_shown, max_concurrency(plays_));

  // Sessions tab "Playback all": every session counted, the streams listed.
  const std::string table = section(dom, "id=\"sessions-table\"", "</table>");
  for (const std::string& stream : streams_) EXPECT_NE(table.find(">" + stream + "<"), std::string::npos) << stream;
  EXPECT_NE(dom.find("data-total=\"" + std::to_string(plays_.size() + publishes_.size()) + "\""), std::string::npos)
      << section(dom, "id=\"page-info\"", "</span>");

  // A screenshot for people to look at (not compared): STREAMTALLY_DASHBOARD_SCREENSHOT=path.png
  if (const char* path = std::getenv("STREAMTALLY_DASHBOARD_SCREENSHOT")) dump_dom(collector.dir(), collector.url("/"), path);
}

// Sessions tab, filters and order come from the fragment (a bookmarkable view) through the same
// code as the filter form; the answers are computed here from the posted sessions.
TEST_F(DashboardInBrowser, SessionsTabsAndFiltersFromTheFragment) {
  Collector collector({});
  ASSERT_TRUE(collector.ready()) << collector.log();
  post_all(collector);

  // "By streams", ordered by output traffic (descending).
  const std::string by_stream = dump_dom(collector.dir(), collector.url("/#group=stream&order=-bytes_out"));
  const std::string table = section(by_stream, "id=\"sessions-table\"", "</table>");
  std::vector<std::pair<std::string, uint64_t>> shown;
  const std::regex row(R"re(<tr[^>]*><td class="text">([^<]*)</td><td class="num" data-value="([0-9]+)")re");
  for (auto it = std::sregex_iterator(table.begin(), table.end(), row); it != std::sregex_iterator(); ++it) {
    shown.emplace_back((*it)[1], std::stoull((*it)[2]));
  }
  std::map<std::string, uint64_t> bytes;
  for (const Session& s : plays_) bytes[s.stream] += s.bytes_out;
  std::vector<std::pair<std::string, uint64_t>> want(bytes.begin(), bytes.end());
  std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  EXPECT_EQ(shown, want) << table;
  EXPECT_NE(by_stream.find("data-total=\"3\""), std::string::npos);
  EXPECT_NE(by_stream.find("data-column=\"bytes_out\" scope=\"col\" class=\"sorted desc\""), std::string::npos);

  // "Playback all" filtered by stream, protocol and minimum duration.
  const std::string filtered =
      dump_dom(collector.dir(), collector.url("/#stream=" + streams_[0] + "&protocol=hls&min_duration=100"));
  std::size_t expected = 0;
  for (const auto* list : {&plays_, &publishes_}) {
    for (const Session& s : *list) expected += s.stream == streams_[0] && s.ended_at - s.started_at >= 100000;
  }
  EXPECT_NE(filtered.find("data-total=\"" + std::to_string(expected) + "\""), std::string::npos)
      << "want " << expected << ": " << section(filtered, "id=\"page-info\"", "</span>");
  const std::string rows = section(filtered, "id=\"sessions-table\"", "</table>");
  EXPECT_EQ(rows.find(">" + streams_[1] + "<"), std::string::npos) << "another stream passed the filter";
}

TEST_F(DashboardInBrowser, AsksForTheReadTokenAndUsesIt) {
  Collector collector({"--read-token", "reader-secret"});
  ASSERT_TRUE(collector.ready()) << collector.log();
  post_all(collector);

  const std::string locked = dump_dom(collector.dir(), collector.url("/"));
  EXPECT_NE(locked.find("<dialog id=\"token-dialog\" open"), std::string::npos) << "no token prompt on 401";
  EXPECT_EQ(locked.find(streams_[0]), std::string::npos) << "data shown without a token";

  // The token typed into the prompt is kept in sessionStorage; a #token= fragment takes the
  // same path without typing.
  const std::string opened = dump_dom(collector.dir(), collector.url("/#token=reader-secret"));
  EXPECT_EQ(opened.find("<dialog id=\"token-dialog\" open"), std::string::npos);
  const auto rows = top_rows(opened, "stream", "bytes_out");
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0].first, streams_[0]);

  const std::string wrong = dump_dom(collector.dir(), collector.url("/#token=not-the-token"));
  EXPECT_NE(wrong.find("<dialog id=\"token-dialog\" open"), std::string::npos);
}

}  // namespace
}  // namespace streamtally::test
