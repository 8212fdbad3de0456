// C11: the roles `lethe grants` creates can do their job and nothing else.
#include "support/cluster.hpp"
#include "worker/audit/trail.hpp"
#include "worker/db/pii_sql.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

namespace {

std::filesystem::path role_password(const test::TestDb& t, const std::string& role) {
  t.alter_roles("ALTER ROLE " + role + " PASSWORD 'pw-" + role + "'");
  std::filesystem::path p = t.dir() / (role + ".password");
  test::write_file(p, "pw-" + role + "\n", 0600);
  return p;
}

void require_denied(db::Session& s, const std::string& sql) {
  INFO(sql);
  try {
    s.transact([&](db::Transaction& tx) { tx.exec(sql); });
    FAIL("allowed: " + sql);
  } catch (const db::DbError& e) {
    CHECK(e.sqlstate() == "42501");
    CHECK(e.code() == Exit::permission);
  }
}

} // namespace

TEST_CASE("grants: the purge role reads keys and clocks, writes PII columns, nothing more") {
  test::TestDb t("grants_purge", 50);
  t.migrate_and_grant();
  auto cfg = t.write_config("purge.toml",
                            t.config_text("lethe_purge", role_password(t, "lethe_purge").string()));
  settings::Settings ps = settings::load(cfg);
  auto s = db::connect(ps);

  // Denied: PII values, non-PII columns, other tables, deletes of the root, audit changes.
  require_denied(*s, "SELECT buyer_name FROM orders");
  require_denied(*s, "SELECT * FROM orders");
  require_denied(*s, "SELECT phone FROM shipping_addresses");
  require_denied(*s, "SELECT * FROM order_items");
  require_denied(*s, "SELECT is_business_order FROM orders");
  require_denied(*s, "UPDATE orders SET order_status = 'Shipped'");
  require_denied(*s, "UPDATE order_items SET quantity = 0");
  require_denied(*s, "DELETE FROM orders");
  require_denied(*s, "DELETE FROM shipping_addresses");
  require_denied(*s, "UPDATE lethe.audit_log SET actor = 'x'");
  require_denied(*s, "DELETE FROM lethe.audit_log");
  require_denied(*s, "TRUNCATE lethe.audit_log");
  require_denied(*s, "CREATE TABLE lethe.x (a int)");

  // Allowed: what the purge needs, including its own temporary table for the hmac key pads
  // where PUBLIC may not create any.
  t.admin()->exec("REVOKE TEMPORARY ON DATABASE " + db::quote_ident(t.name()) + " FROM PUBLIC");
  s->exec("CREATE TEMPORARY TABLE lethe_hmac_key (ipad bytea, opad bytea)");
  s->exec("DROP TABLE pg_temp.lethe_hmac_key");
  db::Rows due = s->exec("SELECT amazon_order_id FROM lethe.pii_state_public_orders "
                         "WHERE has_pii AND NOT held ORDER BY amazon_order_id LIMIT 1");
  REQUIRE(due.size() == 1);
  std::string id = due.text(0, 0);
  s->transact([&](db::Transaction& tx) {
    tx.exec("UPDATE orders SET buyer_name = '[redacted]' WHERE amazon_order_id = $1", {id});
    tx.exec("UPDATE shipping_addresses SET name = NULL, phone = NULL WHERE amazon_order_id = $1",
            {id});
    tx.exec("DELETE FROM buyer_tax_classifications WHERE tax_info_id IN "
            "(SELECT tax_info_id FROM buyer_tax_info WHERE amazon_order_id = $1)",
            {id});
    tx.exec("DELETE FROM buyer_tax_info WHERE amazon_order_id = $1", {id});
  });
  audit::Trail trail(t.dir() / "audit-anchor", t.dir() / "audit-spool",
                     util::Identity{"lethe_purge test", "x", ""});
  CHECK(trail
            .append(*s, audit::Record{audit::Kind::run, "purge", "done", "done", std::nullopt, "{}",
                                      "{}"})
            .seq == 2);
  CHECK(t.admin()
            ->exec("SELECT buyer_name FROM orders WHERE amazon_order_id = $1", {id})
            .text(0, 0) == "[redacted]");
}

TEST_CASE("grants: the purge role reads an hmac column only through the due-values view, only for "
          "orders due now and not held") {
  test::TestDb t("grants_hmac_due", 120);
  t.migrate_and_grant();
  auto cfg = t.write_config("purge.toml",
                            t.config_text("lethe_purge", role_password(t, "lethe_purge").string()));
  auto s = db::connect(settings::load(cfg));
  require_denied(*s, "SELECT buyer_email FROM orders");
  require_denied(*s, "SELECT buyer_email FROM orders WHERE amazon_order_id = 'x'");
  auto admin = t.admin();
  std::string due_ids = "SELECT string_agg(amazon_order_id, ',' ORDER BY amazon_order_id) FROM ";
  std::string expected =
      admin->exec(due_ids + "lethe.pii_state_public_orders WHERE due_at <= now() AND NOT held")
          .text(0, 0);
  REQUIRE(admin
              ->exec("SELECT count(*) FROM lethe.pii_state_public_orders WHERE due_at IS NULL "
                     "OR due_at > now() OR held")
              .integer(0, 0) > 0);
  CHECK(s->exec(due_ids + "lethe.pii_due_public_orders").text(0, 0) == expected);
  // The values it shows are the rows' own.
  CHECK(admin
            ->exec("SELECT count(*) FROM lethe.pii_due_public_orders d JOIN orders o USING "
                   "(amazon_order_id) WHERE d.lethe_hmac_0 IS DISTINCT FROM o.buyer_email")
            .integer(0, 0) == 0);
  // The monitor sees none of it.
  auto m = db::connect(settings::load(t.write_config(
      "monitor.toml", t.config_text("lethe_monitor", role_password(t, "lethe_monitor").string()))));
  require_denied(*m, "SELECT * FROM lethe.pii_due_public_orders");
}

TEST_CASE("grants: the monitor role runs `lethe check` and `audit verify`, and reads no PII") {
  test::TestDb t("grants_monitor", 50);
  t.migrate_and_grant();
  auto cfg = t.write_config(
      "monitor.toml", t.config_text("lethe_monitor", role_password(t, "lethe_monitor").string()));
  std::vector<std::string> pii = t.pii_values();
  REQUIRE(pii.size() > 100);
  test::RunResult c = t.lethe("check --json", cfg);
  INFO(c.err);
  CHECK((c.exit == 0 || c.exit == 1));
  CHECK(c.out.find("\"tables\":[") != std::string::npos);
  CHECK(t.lethe("audit verify", cfg).exit == 0);
  test::require_no_pii(c.out + c.err, pii);

  auto s = db::connect(settings::load(cfg));
  require_denied(*s, "SELECT buyer_email FROM orders");
  require_denied(*s, "SELECT amazon_order_id FROM orders");
  // It appends records (its verify results) but changes none, and changes no incident.
  require_denied(*s, "UPDATE lethe.audit_log SET actor = 'x'");
  require_denied(*s, "DELETE FROM lethe.audit_log");
  require_denied(*s, "UPDATE lethe.incidents SET state = 'closed'");
  require_denied(*s, "SELECT lethe.incident_change(1)");
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'audit verify' AND "
                "db_role = 'lethe_monitor'")
            .integer(0, 0) == 1);
}

TEST_CASE("grants: applying the script twice is harmless") {
  test::TestDb t("grants_twice", 0);
  t.migrate_and_grant();
  CHECK_NOTHROW(t.alter_roles(db::grants_sql(t.settings())));
}

TEST_CASE("grants: a job role begins and closes runs only with their evidence, and progress only "
          "grows") {
  test::TestDb t("grants_runs", 5);
  t.migrate_and_grant();
  auto cfg = t.write_config("purge.toml",
                            t.config_text("lethe_purge", role_password(t, "lethe_purge").string()));
  auto s = db::connect(settings::load(cfg));
  auto a = t.admin();
  std::string run = s->exec("INSERT INTO lethe.job_runs (job, actor, os_user, lethe_version) "
                            "VALUES ('purge', 'x', 'x', 'v') RETURNING run_id")
                        .text(0, 0);
  // Before schema 5 the job role could rewrite any run record and its progress.
  require_denied(*s, "UPDATE lethe.job_runs SET outcome = 'done', counts = '{}'");
  require_denied(*s, "DELETE FROM lethe.job_runs");
  require_denied(*s, "UPDATE lethe.run_progress SET n = 0");
  require_denied(*s, "DELETE FROM lethe.run_progress");
  require_denied(*s, "INSERT INTO lethe.job_runs (job, actor, os_user, lethe_version, outcome) "
                     "VALUES ('purge', 'x', 'x', 'v', 'done')");
  // Progress grows through the function, never shrinks, only for a running run.
  s->exec("SELECT lethe.add_run_progress($1, 0, '{rows}', '{5}')", {run});
  s->exec("SELECT lethe.add_run_progress($1, 0, '{rows}', '{2}')", {run});
  require_denied(*s, "SELECT lethe.add_run_progress(" + run + ", 0, '{rows}', '{-7}')");
  CHECK(a->exec("SELECT n FROM lethe.run_progress WHERE run_id = $1", {run}).integer(0, 0) == 7);
  // A run closes only with its closing audit record, written in the same transaction.
  require_denied(*s, "SELECT lethe.close_run(" + run + ", 1)");
  CHECK(a->exec("SELECT outcome FROM lethe.job_runs WHERE run_id = $1", {run}).text(0, 0) ==
        "running");
  audit::Trail trail(t.dir() / "audit-anchor", t.dir() / "audit-spool",
                     util::Identity{"lethe_purge test", "x", ""});
  trail.append(*s,
               audit::Record{audit::Kind::run, "purge", "done", "done", std::stoll(run),
                             "{\"rows\":7}", "{}"},
               audit::Closes::run);
  db::Rows closed = a->exec("SELECT outcome, counts FROM lethe.job_runs WHERE run_id = $1", {run});
  CHECK(closed.text(0, 0) == "done");
  CHECK(closed.text(0, 1) == "{\"rows\":7}");
  require_denied(*s, "SELECT lethe.add_run_progress(" + run + ", 0, '{rows}', '{1}')");
}

TEST_CASE("grants: purge and archive refuse state views made for another map, before any work") {
  test::TestDb t("grants_stale_views", 200, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  std::string before = test::table_digest(*s, "orders");
  s->exec("COMMENT ON VIEW lethe.pii_due_public_orders IS 'lethe pii-map 00 (state views 2)'");
  for (const std::string job : {"purge", "archive run"}) {
    test::RunResult r = t.lethe(job + " --as-of '2026-06-30 12:00:00+00'");
    INFO(job << ": " << r.err);
    CHECK(r.exit == 78);
    CHECK(r.err.find("lethe.\"pii_due_public_orders\" was made for another PII map or an older "
                     "lethe") != std::string::npos);
    CHECK(r.err.find("HINT: run `lethe grants > grants.sql`") != std::string::npos);
  }
  CHECK(test::table_digest(*s, "orders") == before);
  CHECK(s->exec("SELECT count(*) FROM lethe.archives").integer(0, 0) == 0);
  CHECK((!std::filesystem::exists(t.dir() / "archive-spool") ||
         std::filesystem::is_empty(t.dir() / "archive-spool")));
  t.migrate_and_grant();
  test::RunResult ok = t.lethe("purge --force --operator dana --as-of '2026-06-30 12:00:00+00'");
  INFO(ok.err);
  CHECK(ok.exit == 0);
}
