// util::Child: no shell, the child's environment is what lethe sets (PG* dropped, secrets only
// there), stdout and stdin pumped while stderr is kept, exit codes and deadlines.
#include "worker/util/error.hpp"
#include "worker/util/process.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>

using namespace lethe;

namespace {

std::string read_all(util::Child& c) {
  std::string out;
  unsigned char buf[256];
  for (size_t n; (n = c.read(buf, sizeof buf)) > 0;) {
    out.append(reinterpret_cast<const char*>(buf), n);
  }
  return out;
}

util::ChildSpec sh(const std::string& script) {
  util::ChildSpec spec;
  spec.program = "sh";
  spec.args = {"-c", script};
  spec.read_stdout = true;
  return spec;
}

} // namespace

TEST_CASE("child: stdout read, stderr kept apart, the exit status returned") {
  util::Child c(sh("echo out; echo 'said on stderr' >&2; exit 3"));
  CHECK(read_all(c) == "out\n");
  CHECK(c.wait() == 3);
  CHECK(c.stderr_text() == "said on stderr\n");
}

TEST_CASE("child: inherited PG* variables are dropped, lethe's and the secret are set") {
  ::setenv("PGUSER", "inherited-user", 1);
  ::setenv("LETHE_UNIT_KEEP", "kept", 1);
  util::Secret secret("s3cret value");
  util::ChildSpec spec = sh("printf '%s|%s|%s|%s' \"${PGUSER-unset}\" \"$PGSSLMODE\" "
                            "\"$PGPASSWORD\" \"$LETHE_UNIT_KEEP\"");
  spec.env = {{"PGSSLMODE", "verify-full"}};
  spec.secret_env = {{"PGPASSWORD", &secret}};
  util::Child c(spec);
  CHECK(read_all(c) == "unset|verify-full|s3cret value|kept");
  CHECK(c.wait() == 0);
  ::unsetenv("PGUSER");
}

TEST_CASE("child: arguments reach it as they are, with no shell in between") {
  util::ChildSpec spec;
  spec.program = "printf";
  spec.args = {"%s|", "a b", "$(echo no)", "'q'"};
  spec.read_stdout = true;
  util::Child c(spec);
  CHECK(read_all(c) == "a b|$(echo no)|'q'|");
  CHECK(c.wait() == 0);
}

TEST_CASE("child: stdin fed in chunks larger than a pipe, while the child writes stderr") {
  util::ChildSpec spec;
  spec.program = "sh";
  spec.args = {"-c", "head -c 100000 /dev/zero >&2; wc -c"};
  spec.feed_stdin = true;
  spec.read_stdout = true;
  util::Child c(spec);
  std::string data(1 << 20, 'x');
  REQUIRE(c.write(reinterpret_cast<const unsigned char*>(data.data()), data.size()));
  c.close_stdin();
  std::string out = read_all(c);
  CHECK(std::stol(out) == (1 << 20));
  CHECK(c.wait() == 0);
  CHECK(c.stderr_text().size() == 65536); // kept, bounded
}

TEST_CASE("child: a child that stops reading ends the writes without killing lethe") {
  util::ChildSpec spec;
  spec.program = "head";
  spec.args = {"-c", "10"};
  spec.feed_stdin = true;
  util::Child c(spec);
  std::string data(8 << 20, 'y'); // more than any pipe holds
  CHECK_FALSE(c.write(reinterpret_cast<const unsigned char*>(data.data()), data.size()));
  CHECK(c.wait() == 0);
}

TEST_CASE("child: a missing program is 127, a deadline throws, a signal is 128 + N") {
  util::ChildSpec missing;
  missing.program = "lethe-no-such-program";
  util::Child m(missing);
  CHECK(m.wait() == 127);

  util::Child slow(sh("sleep 5"));
  slow.set_deadline(std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
  unsigned char buf[8];
  CHECK_THROWS_AS(slow.read(buf, sizeof buf), util::ChildTimedOut);
  slow.kill();
  CHECK(slow.wait() == 128 + 9);

  CHECK(util::program_version("lethe-no-such-program").empty()); // empty, no throw

  // A child whose grandchild keeps stderr open is not waited for past the deadline.
  util::ChildSpec held = sh("sleep 5 & exit 0");
  held.read_stdout = false;
  util::Child h(held);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(h.wait() == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));

  util::Child late(sh("sleep 5"));
  late.set_deadline(std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
  CHECK_THROWS_AS(late.wait(), util::ChildTimedOut);
}
