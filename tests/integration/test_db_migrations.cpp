#include "support/cluster.hpp"
#include "worker/db/migrations.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

TEST_CASE("migrate: from an empty database to the newest version, then nothing to do") {
  test::TestDb t("migrate", 0);
  auto s = t.admin();
  CHECK(db::schema_version(*s) == 0);
  db::MigrateOutcome first = db::migrate(*s);
  CHECK(first.from == 0);
  CHECK(first.to == db::known_schema_version());
  CHECK(first.applied.size() == db::embedded_migrations().size());
  CHECK_NOTHROW(db::require_current_schema(*s));
  db::MigrateOutcome again = db::migrate(*s);
  CHECK(again.applied.empty());
  CHECK(again.from == again.to);
  CHECK(s->exec("SELECT count(*) FROM lethe.schema_version").integer(0, 0) ==
        static_cast<long long>(db::embedded_migrations().size()));
}

TEST_CASE("migrate: a schema newer than the binary knows is refused") {
  test::TestDb t("migrate_newer", 0);
  auto s = t.admin();
  db::migrate(*s);
  s->exec("INSERT INTO lethe.schema_version (version, name, lethe_version) VALUES (999, 'future', "
          "'9')");
  try {
    db::migrate(*s);
    FAIL("migrated over a newer schema");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::config);
    CHECK(std::string(e.what()).find("version 999") != std::string::npos);
  }
  CHECK_THROWS_AS(db::require_current_schema(*s), Error);
  test::RunResult r = t.lethe("check");
  CHECK(r.exit == 78);
  CHECK(r.err.find("HINT: install the lethe release") != std::string::npos);
}

TEST_CASE("require_current_schema: jobs refuse an unmigrated database and say what to do") {
  test::TestDb t("migrate_missing", 0);
  test::RunResult r = t.lethe("check");
  CHECK(r.exit == 78);
  CHECK(r.err.find("HINT: run `lethe migrate`") != std::string::npos);
}

TEST_CASE("migrate: concurrent runs serialize on the advisory lock") {
  test::TestDb t("migrate_race", 0);
  test::RunResult r = test::run_shell(
      std::string("(") + LETHE_BIN " --config " + t.config().string() +
          " migrate & " LETHE_BIN " --config " + t.config().string() + " migrate & wait)",
      t.dir());
  CHECK(db::schema_version(*t.admin()) == db::known_schema_version());
  CHECK(
      t.admin()->exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'migrate'").integer(0, 0) ==
      2);
}
