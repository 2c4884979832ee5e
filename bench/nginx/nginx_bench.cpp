// nginx_bench: what the StreamTally modules cost nginx.
//
//  1. RTMP fan-out: one publisher (a pre-encoded FLV looped with -c copy, so the
//     publisher's own CPU stays small) and K ffmpeg players, for D seconds; the
//     figure is the nginx worker's CPU seconds: the sum of its threads' run time
//     from /proc/<pid>/task/*/schedstat (nanoseconds; /proc/<pid>/stat's utime +
//     stime count 10 ms ticks, too coarse for a worker that needs ~20 ms/s here).
//     The library's writer/uploader threads live in the worker and are included.
//  2. HLS: wrk fetching a file with a different token per request out of V viewers
//     (so the shared session table really works), on W workers ("auto" allowed), for
//     two responses: a ~1 KB playlist (per-request cost shows) and a 75 KB segment
//     (file I/O dominates); figures are requests/s and the workers' CPU microseconds
//     per request.
//
// Each workload runs without the modules (baseline) and with them, alternately, in
// the same run; medians over the rounds are compared (the box is shared: single
// rounds are noisy, alternating spreads the noise over both). The worker CPU is also
// split into the event loop (the worker's main thread) and the library's threads
// (spool writer, uploader), so a regression shows where it lives.
// Aims: RTMP CPU ratio <= 1.02; HLS requests/s ratio >= 0.98 and <= +1 us CPU/request.
//
//   nginx_bench [--players K] [--seconds D] [--rounds R] [--viewers V] [--workers W|auto]
//               [--only rtmp|hls]
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <dirent.h>

#include "test_support.hpp"

using namespace std::chrono_literals;
namespace st = streamtally::test;

namespace {

struct Settings {
  int players = 16;
  int seconds = 10;
  int rounds = 3;
  int viewers = 2000;
  std::string workers = "2";
  std::string only;  // "", "rtmp" or "hls"
};

// CPU time of a process's threads, in seconds: the main thread (nginx's event loop)
// and the others (the library's threads living in the worker).
struct Cpu {
  double event_loop = 0, threads = 0;
  double total() const { return event_loop + threads; }
  Cpu operator-(const Cpu& o) const { return {event_loop - o.event_loop, threads - o.threads}; }
  Cpu& operator+=(const Cpu& o) {
    event_loop += o.event_loop;
    threads += o.threads;
    return *this;
  }
};

Cpu cpu_seconds(pid_t pid) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  Cpu cpu;
  DIR* dir = opendir(tasks.c_str());
  if (!dir) return cpu;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(tasks + "/" + e->d_name + "/schedstat");
    unsigned long long run_ns = 0;
    if (!(in >> run_ns)) continue;
    (atoi(e->d_name) == pid ? cpu.event_loop : cpu.threads) += static_cast<double>(run_ns) / 1e9;
  }
  closedir(dir);
  return cpu;
}

std::vector<pid_t> workers_of(pid_t master) {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  while (dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    if (pid <= 0) continue;
    std::string stat = st::read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == master && st::read_file("/proc/" + std::to_string(pid) + "/cmdline").rfind("nginx: worker", 0) == 0)
      pids.push_back(pid);
  }
  closedir(proc);
  return pids;
}

Cpu workers_cpu(pid_t master) {
  Cpu total;
  for (pid_t p : workers_of(master)) total += cpu_seconds(p);
  return total;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One nginx instance, with or without the StreamTally modules.
class Server {
 public:
  Server(bool with_module, const std::string& workers) {
    rtmp_port_ = st::free_port();
    http_port_ = st::free_port();
    const std::string d = dir_.path().string();
    std::filesystem::create_directories(d + "/hls");
    std::filesystem::create_directories(d + "/static");
    // segments of a typical 1 s, ~600 kbit/s HLS stream, and a live playlist's size
    std::ofstream(d + "/static/seg.ts") << std::string(75000, 'x');
    std::ofstream(d + "/static/index.m3u8") << std::string(1000, 'x');
    std::string conf = "daemon off;\nuser nobody nogroup;\nworker_processes " + workers +
                       ";\npid " + d + "/nginx.pid;\nerror_log " + d + "/error.log warn;\n" +
                       "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n";
    std::string st_main, st_app, st_loc;
    if (with_module) {
      conf += std::string("load_module ") + STREAMTALLY_NGX_RTMP_MODULE + ";\nload_module " +
              STREAMTALLY_NGX_HTTP_MODULE + ";\n";
      st_main = "streamtally_spool " + d + "/spool.db; streamtally_interim 10s;";
      st_app = "streamtally on;";
      st_loc = "streamtally on; streamtally_token $arg_token;";
    }
    conf += "events { worker_connections 4096; }\n";
    conf += "rtmp { " + st_main + " server { listen 127.0.0.1:" + std::to_string(rtmp_port_) +
            "; application app { live on; " + st_app + " } } }\n";
    conf += "http { access_log off; " + st_main + " client_body_temp_path " + d + "/body; proxy_temp_path " + d +
            "/proxy; fastcgi_temp_path " + d + "/fcgi; uwsgi_temp_path " + d + "/uwsgi; scgi_temp_path " + d +
            "/scgi;\n server { listen 127.0.0.1:" + std::to_string(http_port_) +
            " reuseport; location /hls/ { alias " + d + "/static/; " + st_loc + " } } }\n";
    std::ofstream(d + "/nginx.conf") << conf;
    st::ChildProcess::Options o;
    o.argv = {"/usr/sbin/nginx", "-p", d, "-c", d + "/nginx.conf"};
    o.stderr_path = d + "/nginx.stderr";
    master_ = std::make_unique<st::ChildProcess>(std::move(o));
    if (!st::wait_for_port(http_port_, 10s) || !st::wait_for_port(rtmp_port_, 10s)) {
      std::cerr << "nginx did not start: " << st::read_file(d + "/nginx.stderr") << st::read_file(d + "/error.log");
      std::exit(1);
    }
    const std::size_t expected =
        workers == "auto" ? std::thread::hardware_concurrency() : static_cast<std::size_t>(std::stoi(workers));
    st::wait_until([&] { return workers_of(master_->pid()).size() == expected; }, 10s);
  }
  ~Server() {
    master_->signal(SIGQUIT);
    if (!master_->wait(15s)) master_->stop();
  }
  pid_t master() const { return master_->pid(); }
  int rtmp_port() const { return rtmp_port_; }
  int http_port() const { return http_port_; }
  std::string dir() const { return dir_.path().string(); }

 private:
  st::TempDir dir_;
  int rtmp_port_ = 0, http_port_ = 0;
  std::unique_ptr<st::ChildProcess> master_;
};

// RTMP fan-out: worker CPU seconds while K players watch for D seconds.
Cpu rtmp_round(bool with_module, const Settings& s, const std::string& flv) {
  Server server(with_module, "1");
  const std::string url = "rtmp://127.0.0.1:" + std::to_string(server.rtmp_port()) + "/app/bench";
  st::ChildProcess publisher({{"ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", flv, "-c",
                               "copy", "-f", "flv", url + "?token=pub"},
                              {}, "", "", "", ""});
  std::this_thread::sleep_for(1500ms);
  std::vector<std::unique_ptr<st::ChildProcess>> players;
  for (int i = 0; i < s.players; i++)
    players.push_back(std::make_unique<st::ChildProcess>(st::ChildProcess::Options{
        {"ffmpeg", "-nostdin", "-loglevel", "error", "-rtmp_flashver", "LNX 9,0,124,2", "-i",
         url + "?token=p" + std::to_string(i), "-c", "copy", "-f", "null", "-"},
        {}, "", "", "", ""}));
  std::this_thread::sleep_for(1500ms);  // all players connected and streaming
  const Cpu before = workers_cpu(server.master());
  std::this_thread::sleep_for(std::chrono::seconds(s.seconds));
  const Cpu used = workers_cpu(server.master()) - before;
  for (auto& p : players) p->stop(2000ms);
  publisher.stop(2000ms);
  return used;
}

struct HlsFigures {
  double requests_per_s = 0;
  double cpu_us_per_request = 0;
  double threads_us_per_request = 0;  // of which the library's threads
};

HlsFigures hls_round(bool with_module, const Settings& s, const std::string& script, const std::string& file) {
  Server server(with_module, s.workers);
  std::this_thread::sleep_for(2s);  // let the previous run's processes finish exiting
  const Cpu before = workers_cpu(server.master());
  auto r = st::run_command({"wrk", "-t2", "-c32", "-d" + std::to_string(s.seconds) + "s", "-s", script,
                            "http://127.0.0.1:" + std::to_string(server.http_port()) + "/hls/" + file},
                           std::chrono::seconds(s.seconds + 30));
  const Cpu used = workers_cpu(server.master()) - before;
  HlsFigures f;
  std::istringstream out(r.out);
  for (std::string line; std::getline(out, line);) {
    if (line.rfind("Requests/sec:", 0) == 0) f.requests_per_s = std::stod(line.substr(13));
  }
  const double requests = f.requests_per_s * s.seconds;
  f.cpu_us_per_request = requests > 0 ? used.total() / requests * 1e6 : 0;
  f.threads_us_per_request = requests > 0 ? used.threads / requests * 1e6 : 0;
  if (f.requests_per_s == 0) std::cerr << "wrk failed: " << r.out << r.err << "\n";
  return f;
}

// One round's baseline and module runs, in the given order: {baseline, module}.
template <class Run>
auto baseline_and_module(bool base_first, const Run& run) {
  decltype(run(false)) base{}, module{};
  if (base_first) {
    base = run(false);
    module = run(true);
  } else {
    module = run(true);
    base = run(false);
  }
  return std::pair(base, module);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines also when redirected
  Settings s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--players") s.players = std::atoi(argv[i + 1]);
    if (a == "--seconds") s.seconds = std::atoi(argv[i + 1]);
    if (a == "--rounds") s.rounds = std::atoi(argv[i + 1]);
    if (a == "--viewers") s.viewers = std::atoi(argv[i + 1]);
    if (a == "--workers") s.workers = argv[i + 1];
    if (a == "--only") s.only = argv[i + 1];
  }

  st::TempDir work;
  // A 6 Mbit/s H.264 + AAC source, encoded once, so publishing costs little CPU.
  const std::string flv = work.file("source.flv");
  if (s.only != "hls") {
    auto enc = st::run_command({"ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                                "testsrc=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "10",
                                "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M", "-maxrate", "6M", "-bufsize",
                                "6M", "-g", "60", "-c:a", "aac", "-f", "flv", flv},
                               120s);
    if (enc.exit_code != 0) {
      std::cerr << "ffmpeg could not encode the source: " << enc.err;
      return 1;
    }
  }
  const std::string script = work.file("viewers.lua");
  std::ofstream(script) << "-- each request from one of " << s.viewers
                        << " viewers, each with its own token (its own StreamTally session)\n"
                           "request = function()\n"
                           "  return wrk.format(nil, wrk.path .. \"?token=viewer-\" .. math.random("
                        << s.viewers << "))\nend\n";

  std::printf("nginx_bench: RTMP 1 publisher (6 Mbit/s) -> %d players, %d s; HLS wrk 2 threads 32 conns, %d s, "
              "%d viewers, worker_processes %s; %d rounds, medians compared\n",
              s.players, s.seconds, s.seconds, s.viewers, s.workers.c_str(), s.rounds);

  std::vector<double> rtmp_ratio;
  Cpu rtmp_base, rtmp_mod;
  struct HlsCase {
    const char* name;
    const char* file;
    std::vector<double> rps_ratio, us_delta, base_us, mod_us, threads_us;
  };
  std::vector<HlsCase> hls = {{"playlist 1 KB", "index.m3u8", {}, {}, {}, {}, {}},
                              {"segment 75 KB", "seg.ts", {}, {}, {}, {}, {}}};
  for (int round = 0; round < s.rounds; round++) {
    // Alternate which goes first, so a slow start (leftovers of the previous run,
    // other load on the box) does not always hit the same side.
    const bool base_first = round % 2 == 0;
    if (s.only != "hls") {
      const auto [b, m] =
          baseline_and_module(base_first, [&](bool with_module) { return rtmp_round(with_module, s, flv); });
      std::printf("  round %d RTMP worker CPU: baseline %.4f s, with StreamTally %.4f s (event loop %.4f s, "
                  "library threads %.4f s), ratio %.3f\n",
                  round + 1, b.total(), m.total(), m.event_loop, m.threads, m.total() / b.total());
      rtmp_ratio.push_back(m.total() / b.total());
      rtmp_base += b;
      rtmp_mod += m;
    }
    if (s.only == "rtmp") continue;
    for (HlsCase& c : hls) {
      const auto [hb, hm] = baseline_and_module(
          base_first, [&](bool with_module) { return hls_round(with_module, s, script, c.file); });
      std::printf("  round %d HLS %s: baseline %.0f req/s (%.2f us CPU/req), with StreamTally %.0f req/s "
                  "(%.2f us CPU/req, of which library threads %.2f)\n",
                  round + 1, c.name, hb.requests_per_s, hb.cpu_us_per_request, hm.requests_per_s,
                  hm.cpu_us_per_request, hm.threads_us_per_request);
      c.rps_ratio.push_back(hm.requests_per_s / hb.requests_per_s);
      c.us_delta.push_back(hm.cpu_us_per_request - hb.cpu_us_per_request);
      c.base_us.push_back(hb.cpu_us_per_request);
      c.mod_us.push_back(hm.cpu_us_per_request);
      c.threads_us.push_back(hm.threads_us_per_request);
    }
  }
  if (s.only != "hls")
    std::printf("RTMP fan-out worker CPU: median ratio %.3f (aim <= 1.02); totals baseline %.4f s, with StreamTally "
                "%.4f s (event loop %.4f s, library threads %.4f s)\n",
                median(rtmp_ratio), rtmp_base.total(), rtmp_mod.total(), rtmp_mod.event_loop, rtmp_mod.threads);
  if (s.only != "rtmp")
    for (const HlsCase& c : hls)
      std::printf("HLS %s: requests/s median ratio %.3f (aim >= 0.98); CPU/request baseline %.2f us, with "
                  "StreamTally %.2f us, median delta %+.2f us (aim <= +1), library threads %.2f us\n",
                  c.name, median(c.rps_ratio), median(c.base_us), median(c.mod_us), median(c.us_delta),
                  median(c.threads_us));
  return 0;
}
