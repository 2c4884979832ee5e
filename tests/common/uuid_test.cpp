#include "streamtally/uuid.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>

using namespace streamtally;

TEST(Uuid, Version4Shape) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = make_uuid_v4();
    ASSERT_TRUE(looks_like_uuid(id)) << id;
    EXPECT_EQ(id[14], '4') << id;
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

// nginx's master forks its workers after it already ran our code: a child must not repeat
// the ids its parent (or a sibling) generates next.
TEST(Uuid, ForkedChildrenDoNotRepeatTheirParent) {
  (void)make_uuid_v4();  // the parent's generator is seeded before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  constexpr int kChildren = 3;
  for (int c = 0; c < kChildren; ++c) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const std::string id = make_uuid_v4() + "\n";
      const bool written = write(fds[1], id.data(), id.size()) == static_cast<ssize_t>(id.size());
      _exit(written ? 0 : 1);
    }
  }
  close(fds[1]);
  std::set<std::string> ids = {make_uuid_v4()};
  std::string text;
  char buf[256];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  for (int c = 0; c < kChildren; ++c) {
    int status = 0;
    wait(&status);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  for (std::size_t begin = 0, end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
    ids.insert(text.substr(begin, end - begin));
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kChildren + 1)) << text;
}
