#include "streamtally/uuid.hpp"

#include <unistd.h>

#include <cstdint>
#include <cctype>
#include <cstdio>
#include <random>

namespace streamtally {

namespace {

std::mt19937_64 seeded_generator() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
  return std::mt19937_64(seq);
}

}  // namespace

std::string make_uuid_v4() {
  // One generator per thread, seeded from the OS: no lock. A fork() copies the generator
  // of the thread that forks (nginx's master forks its workers after configuration, a
  // test forks after opening a spool), so a child would repeat its parent's ids: the
  // generator is reseeded whenever the process id is not the one it was seeded in.
  thread_local std::mt19937_64 rng = seeded_generator();
  thread_local pid_t seeded_in = getpid();
  if (const pid_t pid = getpid(); pid != seeded_in) {
    rng = seeded_generator();
    seeded_in = pid;
  }
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

bool looks_like_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace streamtally
