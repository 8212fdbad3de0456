// The binary as operators and systemd see it: exit codes, logs without PII, audit identity.
#include "support/cluster.hpp"

#include <catch2/catch.hpp>
#include <sstream>

using namespace lethe;

TEST_CASE(
    "lethe: migrate, config check and check on sample data, no PII in any output or audit row") {
  test::TestDb t("cli_flow", 300);
  t.make_archive_keys(); // config check reads archive.recipients
  std::vector<std::string> pii = t.pii_values();
  REQUIRE(pii.size() > 500);
  std::string all_output;
  std::string all_err;
  auto run = [&](const std::string& args) {
    test::RunResult r = t.lethe(args);
    all_output += r.out + r.err;
    all_err += r.err;
    return r;
  };
  CHECK(run("migrate --operator dana").exit == 0);
  t.migrate_and_grant();
  CHECK(run("config check").exit == 0);
  test::RunResult c = run("check");
  CHECK((c.exit == 0 || c.exit == 1));
  CHECK(run("audit verify").exit == 0);
  CHECK(run("audit show --json").exit == 0);
  // Every stderr line is one key=value event.
  std::istringstream lines(all_err);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    INFO(line);
    CHECK(line.rfind("level=", 0) == 0);
    CHECK(line.find(" event=") != std::string::npos);
  }
  CHECK(n >= 6);
  test::require_no_pii(all_output, pii);
  db::Rows audit = t.admin()->exec("SELECT string_agg(l::text, '\n') FROM lethe.audit_log l");
  test::require_no_pii(audit.at(0, 0).value_or(""), pii);
  db::Rows who = t.admin()->exec("SELECT actor, os_user FROM lethe.audit_log ORDER BY seq LIMIT 1");
  CHECK(who.text(0, 0) == "dana");
  CHECK_FALSE(who.text(0, 1).empty());
}

TEST_CASE("lethe: stderr lines are key=value events, with the journald prefix under systemd") {
  test::TestDb t("cli_journal", 0);
  test::RunResult r = test::run_shell(
      "exec 3>&2; JOURNAL_STREAM=$(stat -L -c '%d:%i' /proc/self/fd/2) " LETHE_BIN " --config " +
          t.config().string() + " migrate",
      t.dir());
  // stderr is a file here, so JOURNAL_STREAM computed from that same file matches it.
  REQUIRE(r.exit == 0);
  std::istringstream lines(r.err);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    CHECK(line.rfind("<6>level=info event=", 0) == 0);
  }
  CHECK(n >= 2);
}

TEST_CASE("lethe: usage and configuration errors have their exit codes and a HINT") {
  test::TestDb t("cli_errors", 0);
  test::RunResult u = t.lethe("frobnicate");
  CHECK(u.exit == 64);
  CHECK(u.err.find("HINT:") != std::string::npos);
  test::RunResult c = test::run_shell(LETHE_BIN " --config /nonexistent.toml check", t.dir());
  CHECK(c.exit == 78);
  CHECK(c.err.find("HINT:") != std::string::npos);
  test::write_file(t.dir() / "typo.toml",
                   "[database]\ndsn = \"host=x\"\nsslrootcert = \"/x\"\nport = 5\n");
  test::RunResult k = test::run_shell(
      LETHE_BIN " --config " + (t.dir() / "typo.toml").string() + " check", t.dir());
  CHECK(k.exit == 78);
  CHECK(k.err.find("typo.toml:4:1: unknown key 'database.port'") != std::string::npos);
  test::RunResult h = t.lethe("check --help");
  CHECK(h.exit == 0);
  CHECK(h.out.find("--as-of TIMESTAMP") != std::string::npos);
}
