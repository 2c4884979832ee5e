// Test helper: opens the spool given as argv[1], appends argv[2] open sessions (as a
// host would, through Spool::append) and dies with SIGKILL — no clean close — so
// `streamtally-spool recover` has a dead writer's sessions to close.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "streamtally/spool.hpp"
#include "streamtally/uuid.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SPOOL COUNT\n", argv[0]);
    return 2;
  }
  streamtally::SpoolOptions options;
  options.path = argv[1];
  auto spool = streamtally::Spool::open(options);
  if (!spool.ok()) {
    std::fprintf(stderr, "open: %s\n", spool.error().c_str());
    return 1;
  }
  std::vector<streamtally::SessionRecord> records;
  for (int i = 0; i < std::stoi(argv[2]); ++i) {
    streamtally::SessionRecord r;
    r.server_id = "edge-dying";
    r.host = "edge-dying.example";
    r.session_id = streamtally::make_uuid_v4();
    r.seq = 1;
    r.protocol = streamtally::Protocol::Rtmp;
    r.stream = "live/dying";
    r.client_ip = "192.0.2.1";
    r.started_at = 1'763'700'000'000;
    r.updated_at = r.started_at + 60'000;
    r.bytes_out = 1000u * static_cast<unsigned>(i);
    records.push_back(r);
  }
  auto appended = (*spool)->append(records);
  if (!appended.ok()) {
    std::fprintf(stderr, "append: %s\n", appended.error().c_str());
    return 1;
  }
  std::printf("%zu\n", appended->appended);
  std::fflush(stdout);
  kill(getpid(), SIGKILL);
  return 0;
}
