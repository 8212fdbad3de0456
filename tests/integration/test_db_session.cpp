// C9: TLS or nothing, against real servers: the TLS cluster and a plaintext one.
#include "support/cluster.hpp"
#include "worker/db/session.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>

using namespace lethe;
using test::cluster;

TEST_CASE("connect: verified TLS to the test server") {
  test::TestDb t("tls_ok", 0);
  auto s = db::connect(t.settings());
  CHECK(s->tls_description().rfind("TLSv1.", 0) == 0);
  CHECK(s->exec("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").text(0, 0) == "t");
  CHECK(s->exec("SHOW TimeZone").text(0, 0) == "UTC");
  CHECK(s->exec("SHOW lock_timeout").text(0, 0) == "2s");
}

TEST_CASE("connect: a server that offers no TLS is refused, with a hint, and an alarm spooled") {
  test::TestDb t("tls_plain", 0);
  std::string text = t.config_text();
  std::string from = "port=" + std::to_string(cluster().port);
  text.replace(text.find(from), from.size(), "port=" + std::to_string(cluster().plain_port));
  auto cfg = t.write_config("plain.toml", text);
  test::RunResult r = t.lethe("check", cfg);
  CHECK(r.exit == 69);
  CHECK(r.err.find("does not support SSL") != std::string::npos);
  CHECK(r.err.find("HINT: the server offers no TLS") != std::string::npos);
  std::string spool = util::read_file(t.dir() / "audit-spool");
  CHECK(spool.find("\talarm\tcheck\t") != std::string::npos);
  CHECK(spool.find("tls_refused") != std::string::npos);

  // The refusal happened 30 hours ago (as its spool line says): its incident's 24-hour clock
  // runs from then, not from when the record reaches the table.
  std::string line = util::read_file(t.dir() / "audit-spool");
  size_t tab1 = line.find('\t');
  size_t tab2 = line.find('\t', tab1 + 1);
  long long spooled = std::stoll(line.substr(tab1 + 1, tab2 - tab1 - 1)) - 30 * 3600;
  line.replace(tab1 + 1, tab2 - tab1 - 1, std::to_string(spooled));
  test::write_file(t.dir() / "audit-spool", line);
  // The next run that reaches the database moves the refusal into the audit trail.
  t.migrate_and_grant();
  test::RunResult show = t.lethe("audit show --json");
  REQUIRE(show.exit == 0);
  CHECK(show.out.find("\"exit_reason\":\"tls_refused\"") != std::string::npos);
  CHECK(show.out.find("\"spool_id\"") != std::string::npos);
  CHECK(util::read_file(t.dir() / "audit-spool").empty());
  // Flushing twice does not duplicate it.
  CHECK(t.lethe("audit show --json").out == show.out);
  // The alarm opened an incident when it reached the table (C15, C18).
  test::RunResult inc = t.lethe("incident list --json");
  REQUIRE(inc.exit == 0);
  CHECK(inc.out.find("\"kind\":\"check: tls_refused\"") != std::string::npos);
  CHECK(inc.out.find("\"state\":\"open\"") != std::string::npos);
  CHECK(inc.out.find("\"notify_overdue\":true") != std::string::npos);
  auto s = t.admin();
  CHECK(
      s->exec("SELECT extract(epoch FROM opened_at)::bigint FROM lethe.incidents").integer(0, 0) ==
      spooled);
}

TEST_CASE("connect: every host attempt is reported, not only the first") {
  // As on a Debian host whose "localhost" is ::1 and 127.0.0.1 and a server listens on one:
  // libpq tries a closed port first, then the plaintext server; the refusal must name both.
  test::TestDb t("tls_attempts", 0);
  std::string text = t.config_text();
  std::string from = "host=localhost port=" + std::to_string(cluster().port);
  REQUIRE(text.find(from) != std::string::npos);
  text.replace(text.find(from), from.size(),
               "host=localhost,localhost port=1," + std::to_string(cluster().plain_port));
  auto cfg = t.write_config("attempts.toml", text);
  test::RunResult r = t.lethe("check", cfg);
  CHECK(r.exit == 69);
  CHECK(r.err.find("port 1 failed") != std::string::npos);
  CHECK(r.err.find("does not support SSL") != std::string::npos);
  CHECK(r.err.find("HINT: the server offers no TLS") != std::string::npos);
}

TEST_CASE("connect: a certificate for another host name is refused") {
  test::TestDb t("tls_mismatch", 0);
  std::string text = t.config_text();
  text.replace(text.find("host=localhost"), 14, "host=127.0.0.1");
  settings::Settings s = settings::load_from_string(text, "mismatch.toml");
  try {
    db::connect(s);
    FAIL("connected despite a host-name mismatch");
  } catch (const db::TlsRefused& e) {
    CHECK(e.code() == Exit::unavailable);
    CHECK(std::string(e.what()).find("does not match host name") != std::string::npos);
    CHECK(e.hint().find("certificate") != std::string::npos);
  }
}

TEST_CASE("connect: a server certificate from an untrusted CA is refused") {
  test::TestDb t("tls_ca", 0);
  std::string text = t.config_text();
  text.replace(text.find(cluster().ca), cluster().ca.size(), cluster().other_ca);
  settings::Settings s = settings::load_from_string(text, "otherca.toml");
  CHECK_THROWS_AS(db::connect(s), db::TlsRefused);
}

TEST_CASE("connect: a weak sslmode in the DSN is a config error (78) before any connection") {
  test::TestDb t("tls_weak", 0);
  for (std::string mode : {"disable", "prefer", "require"}) {
    auto cfg = t.write_config("weak-" + mode + ".toml", t.config_text({}, {}, "sslmode=" + mode));
    test::RunResult r = t.lethe("check", cfg);
    INFO(r.err);
    CHECK(r.exit == 78);
    CHECK(r.err.find("asks for sslmode=" + mode) != std::string::npos);
    CHECK(r.err.find("HINT:") != std::string::npos);
    CHECK(r.err.find("db.connected") == std::string::npos);
  }
}

TEST_CASE("connect: the password file must be private to the running user") {
  test::TestDb t("pw_mode", 0);
  test::write_file(t.dir() / "pw", util::read_file(cluster().admin_password_file), 0644);
  auto cfg = t.write_config("pw.toml", t.config_text({}, (t.dir() / "pw").string()));
  test::RunResult r = t.lethe("check", cfg);
  CHECK(r.exit == 77);
  CHECK(r.err.find("HINT: chmod 0600") != std::string::npos);
}

TEST_CASE("connect: the password can come from systemd's credentials directory") {
  test::TestDb t("pw_cred", 0);
  std::filesystem::create_directories(t.dir() / "creds");
  test::write_file(t.dir() / "creds" / "lethe-db-password",
                   util::read_file(cluster().admin_password_file), 0400);
  std::string text = t.config_text();
  text.replace(text.find("password_file = \""), std::string("password_file = \"").size(),
               "password_file = \"\"\n#");
  auto cfg = t.write_config("cred.toml", text);
  test::RunResult r = test::run_shell("CREDENTIALS_DIRECTORY=" + (t.dir() / "creds").string() +
                                          " " LETHE_BIN " --config " + cfg.string() + " migrate",
                                      t.dir());
  INFO(r.err);
  CHECK(r.exit == 0);
}

TEST_CASE("connect: the session keeps no copy of the password in its connection string") {
  test::TestDb t("pw_kept", 0);
  std::string password = util::read_file(cluster().admin_password_file);
  while (!password.empty() && password.back() == '\n') {
    password.pop_back();
  }
  REQUIRE(password.size() >= 4);
  auto s = db::connect(t.settings());
  CHECK(s->exec("SELECT 1").text(0, 0) == "1");
  std::string kept = s->connection_string();
  CHECK(kept.find("dbname=") != std::string::npos);
  CHECK(kept.find("password") == std::string::npos);
  CHECK(kept.find(password) == std::string::npos);
}
