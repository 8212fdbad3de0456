#include "worker/log/log.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace lethe;

TEST_CASE("format: key=value, quoting values with spaces, quotes or newlines") {
  ::unsetenv("JOURNAL_STREAM");
  std::string line = log::format(log::Level::info, "purge.batch",
                                 {{"rows", 10}, {"table", "public.orders"}, {"msg", "a \"b\"\nc"}});
  CHECK(line == "level=info event=purge.batch rows=10 table=public.orders msg=\"a \\\"b\\\"\\nc\"");
}

TEST_CASE("format: the journald priority prefix appears only when stderr is the journal") {
  struct stat st {};
  REQUIRE(::fstat(STDERR_FILENO, &st) == 0);
  std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", stream.c_str(), 1);
  CHECK(log::format(log::Level::error, "x", {}).rfind("<3>level=error", 0) == 0);
  CHECK(log::format(log::Level::debug, "x", {}).rfind("<7>level=debug", 0) == 0);
  ::setenv("JOURNAL_STREAM", "1:2", 1);
  CHECK(log::format(log::Level::error, "x", {}).rfind("level=error", 0) == 0);
  ::unsetenv("JOURNAL_STREAM");
}

TEST_CASE("event: lines above the level are dropped, the sink sees the rest") {
  std::vector<std::string> lines;
  log::set_sink([&](const std::string& l) { lines.push_back(l); });
  log::set_max_level(log::Level::info);
  log::event(log::Level::debug, "hidden");
  log::event(log::Level::warning, "shown", {{"n", 1}});
  log::set_sink(nullptr);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("event=shown n=1") != std::string::npos);
}
