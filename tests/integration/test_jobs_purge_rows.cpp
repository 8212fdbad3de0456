// C1: the purge rewrites each row from its own values, and its evidence counts what it says.
#include "support/cluster.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/pii_sql.hpp"

#include <catch2/catch.hpp>
#include <map>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

// A one-to-many child of orders unlike the sample's children: several rows per order, its own
// surrogate primary key, no `key` in the map, and PII columns that are sometimes NULL.
const std::string k_notes_table =
    "CREATE TABLE order_notes ("
    "  note_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  amazon_order_id text NOT NULL REFERENCES orders ON DELETE CASCADE,"
    "  message text, signed_by text, contact text);"
    "CREATE INDEX order_notes_order ON order_notes (amazon_order_id)";

const std::string k_notes_map = R"(
[[pii.children]]
table = "public.order_notes"
parent = "public.orders"
link = "amazon_order_id"
parent_column = "amazon_order_id"
strategy = "columns"
columns = [
  { name = "message", strategy = "hmac", category = "free_text" },
  { name = "signed_by", strategy = "constant", value = "[gone]", category = "name" },
  { name = "contact", strategy = "null", category = "phone" },
]
)";

void due_and_undue_orders(db::Session& s) {
  test::insert_order(s, k_as_of, {"A-29d", "Shipped", "29 days", "29 days"});
  test::insert_order(s, k_as_of, {"B-31d", "Shipped", "31 days", "31 days"});
  test::insert_order(s, k_as_of, {"C-40d", "Shipped", "40 days", "40 days"});
  test::insert_order(s, k_as_of, {"F-held-40d", "Shipped", "40 days", "40 days", true});
  test::insert_order(s, k_as_of, {"G-clean-40d", "Shipped", "40 days", "40 days", false, false});
}

void insert_note(db::Session& s, const std::string& order, const db::Value& message,
                 const db::Value& signed_by, const db::Value& contact) {
  s.exec("INSERT INTO order_notes (amazon_order_id, message, signed_by, contact) "
         "VALUES ($1, $2, $3, $4)",
         {order, message, signed_by, contact});
}

void notes(db::Session& s) {
  for (const std::string o : {"A-29d", "B-31d", "C-40d"}) {
    insert_note(s, o, "note one of " + o, "Signer " + o, "+1-555-" + o);
    insert_note(s, o, db::Value{}, "Other signer " + o, db::Value{});
    insert_note(s, o, "note three of " + o, db::Value{}, db::Value{});
    insert_note(s, o, db::Value{}, db::Value{}, db::Value{}); // holds no PII
  }
  insert_note(s, "B-31d", "hmac:" + std::string(64, 'a'), "[gone]", db::Value{}); // done earlier
}

// note_id -> "message|signed_by|contact" with NULL spelled out.
std::map<std::string, std::string> note_rows(db::Session& s, const std::string& where) {
  db::Rows r =
      s.exec("SELECT note_id::text, message, signed_by, contact FROM order_notes WHERE " + where);
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out[r.text(i, 0)] = r.at(i, 1).value_or("NULL") + "|" + r.at(i, 2).value_or("NULL") + "|" +
                        r.at(i, 3).value_or("NULL");
  }
  return out;
}

std::string pseudonym(const db::Value& v) {
  return v ? "hmac:" + crypto::hex(crypto::hmac_sha256("test-hmac-key", *v)) : "NULL";
}

// A figure from the last purge run's audit record.
long long audited(db::Session& s, const std::string& path) {
  db::Rows r = s.exec("SELECT (counts::jsonb #>> $1::text[])::bigint FROM lethe.audit_log "
                      "WHERE job = 'purge' AND kind = 'run' ORDER BY seq DESC LIMIT 1",
                      {path});
  REQUIRE(r.size() == 1);
  REQUIRE(r.at(0, 0).has_value());
  return r.integer(0, 0);
}

std::filesystem::path notes_config(const test::TestDb& t) {
  std::string text = t.config_text() + k_notes_map;
  text = test::set_key(text, "max_fraction_of_table", "1.0");
  text = test::set_key(text, "max_rows_per_run", "10000000");
  return t.write_config("lethe.toml", text); // the default config, so grants see the map
}

} // namespace

TEST_CASE("purge: hmac on a one-to-many child without key pseudonymizes each row's own value") {
  test::TestDb t("purge_notes", 0);
  t.make_archive_keys(); // config check wants archive.recipients to exist
  auto s = t.admin();
  due_and_undue_orders(*s);
  s->exec(k_notes_table);
  notes(*s);
  auto cfg = notes_config(t);
  t.migrate_and_grant();
  std::vector<std::string> pii = t.pii_values();
  const std::string due = "amazon_order_id IN ('B-31d', 'C-40d')";
  std::map<std::string, std::string> undue_before = note_rows(*s, "NOT (" + due + ")");
  long long holding = s->exec("SELECT count(*) FROM order_notes WHERE " + due +
                              " AND ((message IS NOT NULL AND message !~ '^hmac:') OR "
                              "(signed_by IS NOT NULL AND signed_by <> '[gone]') OR "
                              "contact IS NOT NULL)")
                          .integer(0, 0);
  REQUIRE(holding == 6);
  // Each due row's expected value, computed from its own old value.
  std::map<std::string, std::string> want;
  db::Rows before =
      s->exec("SELECT note_id::text, message, signed_by FROM order_notes WHERE " + due);
  for (size_t i = 0; i < before.size(); ++i) {
    const db::Value& m = before.at(i, 1);
    bool done = m && m->rfind("hmac:", 0) == 0;
    want[before.text(i, 0)] =
        (done ? *m : pseudonym(m)) + "|" + (before.at(i, 2) ? "[gone]" : "NULL") + "|NULL";
  }

  CHECK(t.lethe("config check", cfg).exit == 0);
  test::RunResult r = t.lethe("purge --json --as-of '" + k_as_of + "'", cfg);
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(note_rows(*s, due) == want);
  CHECK(note_rows(*s, "NOT (" + due + ")") == undue_before);
  CHECK(audited(*s, "{rows_sanitized_by_table,public.order_notes}") == holding);
  CHECK(r.out.find("{\"table\":\"public.order_notes\",\"rows_sanitized\":" +
                   std::to_string(holding) + ",") != std::string::npos);
  test::require_no_pii(r.out + r.err, pii);

  // A second run finds every row clean: nothing changes, nothing is counted.
  s->exec("UPDATE orders SET buyer_name = 'Name again' WHERE amazon_order_id = 'C-40d'");
  test::RunResult again = t.lethe("purge --json --as-of '" + k_as_of + "'", cfg);
  REQUIRE(again.exit == 0);
  CHECK(note_rows(*s, due) == want);
  CHECK(audited(*s, "{rows_sanitized_by_table,public.order_notes}") == 0);
  CHECK(audited(*s, "{rows_sanitized_by_table,public.orders}") == 1);
}

TEST_CASE("purge: a child without a primary or unique not-null key is refused with 78") {
  test::TestDb t("purge_nokey", 0);
  t.make_archive_keys();
  auto s = t.admin();
  due_and_undue_orders(*s);
  s->exec("CREATE TABLE order_notes (amazon_order_id text NOT NULL REFERENCES orders, "
          "message text, signed_by text, contact text, note_no int UNIQUE)");
  notes(*s);
  auto cfg = notes_config(t);
  test::RunResult m = t.lethe("migrate", cfg);
  REQUIRE(m.exit == 0);

  // `lethe grants` refuses to make the view, and `config check` says why.
  try {
    t.alter_roles(db::grants_sql(t.settings()));
    FAIL("grants made a state view for a table without a row identity");
  } catch (const db::DbError& e) {
    CHECK(e.sqlstate() == "42P16"); // the script's own refusal (its text is for psql)
  }
  test::RunResult c = t.lethe("config check", cfg);
  CHECK(c.exit == 78);
  CHECK(c.err.find("public.order_notes has no primary key or unique not-null column") !=
        std::string::npos);

  // At run time, before any work (the views exist, say from grants made before the key went).
  s->exec("ALTER TABLE order_notes ADD COLUMN note_id int GENERATED ALWAYS AS IDENTITY "
          "PRIMARY KEY");
  t.alter_roles(db::grants_sql(t.settings()));
  s->exec("ALTER TABLE order_notes DROP CONSTRAINT order_notes_pkey");
  std::string before = test::table_digest(*s, "orders") + test::table_digest(*s, "order_notes");
  test::RunResult r = t.lethe("purge --as-of '" + k_as_of + "'", cfg);
  CHECK(r.exit == 78);
  CHECK(r.err.find("public.order_notes has no primary key or unique not-null column") !=
        std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(test::table_digest(*s, "orders") + test::table_digest(*s, "order_notes") == before);
}

TEST_CASE("purge: each count in the audit record is what its name says, checked against SQL") {
  test::TestDb t("purge_counts", 0);
  auto s = t.admin();
  due_and_undue_orders(*s);
  test::insert_order(*s, k_as_of, {"H-held-50d", "Shipped", "50 days", "50 days", true});
  test::insert_order(*s, k_as_of, {"I-cancel-35d", "Canceled", "", "35 days"});
  t.migrate_and_grant();
  auto cfg = notes_config(t);
  s->exec(k_notes_table);
  notes(*s);
  t.alter_roles(db::grants_sql(t.settings()));

  // The tester's own figures, straight from the tables and the retention rules.
  const std::string is_due =
      "(o.shipped_at <= $1::timestamptz - interval '30 days' OR (o.shipped_at IS NULL AND "
      "o.order_status = 'Canceled' AND o.last_update_date <= $1::timestamptz - interval '30 "
      "days'))";
  const std::string pii =
      "(o.buyer_name <> '[redacted]' OR EXISTS (SELECT 1 FROM shipping_addresses a WHERE "
      "a.amazon_order_id = o.amazon_order_id AND a.name IS NOT NULL))";
  auto count = [&](const std::string& sql) { return s->exec(sql, {k_as_of}).integer(0, 0); };
  long long orders_due = count("SELECT count(*) FROM orders o WHERE " + is_due + " AND " + pii +
                               " AND NOT o.is_business_order");
  long long orders_held = count("SELECT count(*) FROM orders o WHERE " + is_due + " AND " + pii +
                                " AND o.is_business_order");
  long long held_addresses =
      count("SELECT count(*) FROM shipping_addresses a JOIN orders o USING (amazon_order_id) "
            "WHERE " +
            is_due + " AND o.is_business_order AND a.name IS NOT NULL");
  long long held_tax = count("SELECT count(*) FROM buyer_tax_info x JOIN orders o USING "
                             "(amazon_order_id) WHERE " +
                             is_due + " AND o.is_business_order");
  long long due_orders_rows = orders_due;
  long long due_addresses =
      count("SELECT count(*) FROM shipping_addresses a JOIN orders o USING (amazon_order_id) "
            "WHERE " +
            is_due + " AND NOT o.is_business_order AND a.name IS NOT NULL");
  REQUIRE(orders_due == 3);
  REQUIRE(orders_held == 2);
  REQUIRE(held_tax == 2);

  test::RunResult r = t.lethe("purge --json --as-of '" + k_as_of + "'", cfg);
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(audited(*s, "{orders_due}") == orders_due);
  CHECK(audited(*s, "{orders_done}") == orders_due);
  CHECK(audited(*s, "{orders_held_awaiting_archive}") == orders_held);
  CHECK(audited(*s, "{orders_skipped_locked}") == 0);
  CHECK(audited(*s, "{rows_sanitized_by_table,public.orders}") == due_orders_rows);
  CHECK(audited(*s, "{rows_sanitized_by_table,public.shipping_addresses}") == due_addresses);
  CHECK(audited(*s, "{rows_sanitized_by_table,public.order_notes}") == 6);
  CHECK(audited(*s, "{rows_held_awaiting_archive_by_table,public.orders}") == orders_held);
  CHECK(audited(*s, "{rows_held_awaiting_archive_by_table,public.shipping_addresses}") ==
        held_addresses);
  CHECK(audited(*s, "{rows_held_awaiting_archive_by_table,public.buyer_tax_info}") == held_tax);
  // No key of the record mixes units: the old sum over tables is gone.
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'purge' AND "
                "counts::jsonb ? 'held_awaiting_archive'")
            .integer(0, 0) == 0);
}
