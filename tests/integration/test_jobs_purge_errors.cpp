// The purge's failures say what and where in lethe's words: never a server's text (which can
// quote row data), and a lost connection is named as such.
#include "support/cluster.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

std::filesystem::path roomy_config(const test::TestDb& t, std::string text = {}) {
  if (text.empty()) {
    text = t.config_text();
  }
  text = test::set_key(text, "max_fraction_of_table", "1.0");
  text = test::set_key(text, "max_rows_per_run", "10000000");
  return t.write_config("roomy.toml", text);
}

void due_orders(db::Session& s) {
  test::insert_order(s, k_as_of, {"B-31d", "Shipped", "31 days", "31 days"});
  test::insert_order(s, k_as_of, {"C-40d", "Shipped", "40 days", "40 days"});
}

// Runs the purge and checks that it failed with `code` and that no PII value reached its
// stdout, its stderr or any audit row.
test::RunResult failing_purge(const test::TestDb& t, int code) {
  std::vector<std::string> pii = t.pii_values();
  REQUIRE(pii.size() > 4);
  test::RunResult r = t.lethe("purge --as-of '" + k_as_of + "'", roomy_config(t));
  INFO(r.err);
  CHECK(r.exit == code);
  CHECK(r.err.find("HINT:") != std::string::npos);
  test::require_no_pii(r.out + r.err, pii);
  db::Rows audit = t.admin()->exec("SELECT string_agg(l::text, E'\\n') FROM lethe.audit_log l");
  test::require_no_pii(audit.at(0, 0).value_or(""), pii);
  return r;
}

} // namespace

TEST_CASE("purge: a trigger that quotes PII in its error and notices puts none of it out") {
  test::TestDb t("purge_trigger_pii", 0);
  t.migrate_and_grant();
  auto s = t.admin();
  due_orders(*s);
  s->exec("CREATE FUNCTION chatty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
          "RAISE NOTICE 'erasing % of %', OLD.phone, OLD.name; RETURN NEW; END $$");
  s->exec("CREATE FUNCTION keep_address() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
          "RAISE EXCEPTION 'address % of % may not be erased', OLD.address_line1, OLD.name "
          "USING DETAIL = 'phone ' || OLD.phone, HINT = 'ask ' || OLD.name; END $$");
  s->exec("CREATE TRIGGER a_chatty BEFORE UPDATE ON shipping_addresses FOR EACH ROW "
          "EXECUTE FUNCTION chatty()");
  s->exec("CREATE TRIGGER b_keep_address BEFORE UPDATE ON shipping_addresses FOR EACH ROW "
          "EXECUTE FUNCTION keep_address()");
  std::string before =
      test::table_digest(*s, "orders") + test::table_digest(*s, "shipping_addresses");
  test::RunResult r = failing_purge(t, 65);
  CHECK(r.err.find("database error P0001 (a trigger or function in the database raised an "
                   "error)") != std::string::npos);
  CHECK(r.err.find("server log") != std::string::npos);
  CHECK(test::table_digest(*s, "orders") + test::table_digest(*s, "shipping_addresses") == before);
}

TEST_CASE("purge: a CHECK violation on a PII column names the constraint, not the row") {
  test::TestDb t("purge_check_pii", 0);
  t.migrate_and_grant();
  auto s = t.admin();
  due_orders(*s);
  s->exec("ALTER TABLE shipping_addresses ADD CONSTRAINT phone_kept CHECK (phone IS NOT NULL)");
  test::RunResult r = failing_purge(t, 65);
  CHECK(r.err.find("database error 23514 (a constraint refused the change) on "
                   "public.shipping_addresses, constraint phone_kept") != std::string::npos);
}

TEST_CASE("purge: a connection lost mid-run says so, exits 75 with a hint") {
  test::TestDb t("purge_conn_lost", 0);
  t.migrate_and_grant();
  t.approve(); // `lethe check` wants an approved schema
  auto s = t.admin();
  due_orders(*s);
  // Hold a row the purge must update, so its batch waits on the lock while we end its backend.
  auto blocker = t.admin();
  blocker->exec("BEGIN");
  blocker->exec("SELECT 1 FROM shipping_addresses WHERE amazon_order_id = 'C-40d' FOR UPDATE");
  auto cfg = roomy_config(t, test::set_key(t.config_text(), "lock_timeout_ms", "60000"));
  test::RunResult r;
  std::thread purge([&] { r = t.lethe("purge --as-of '" + k_as_of + "'", cfg); });
  bool terminated = false;
  for (int i = 0; i < 3000 && !terminated; ++i) {
    db::Rows w = s->exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                         "current_database() AND application_name = 'lethe' AND "
                         "wait_event_type = 'Lock'");
    terminated = !w.empty() && w.text(0, 0) == "t";
    if (!terminated) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10)); // polling, not timing
    }
  }
  purge.join();
  blocker->exec("ROLLBACK");
  REQUIRE(terminated);
  INFO(r.err);
  CHECK(r.exit == 75);
  CHECK(r.err.find("connection to the database was lost") != std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(r.err.find("Could not obtain client encoding") == std::string::npos);
  // Nothing of the interrupted batch was committed; the next run does it all.
  CHECK(t.lethe("check --as-of '" + k_as_of + "'").exit == 1);
  CHECK(t.lethe("purge --as-of '" + k_as_of + "'", roomy_config(t)).exit == 0);
  CHECK(t.lethe("check --as-of '" + k_as_of + "'").exit == 0);
}
