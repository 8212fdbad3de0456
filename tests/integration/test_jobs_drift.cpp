// C1 and schema drift: a migration that adds PII where the map does not look is an alarm of
// `lethe check` until the map says what it holds and an operator approves; the approval is
// evidence the audit chain covers.
#include "support/cluster.hpp"
#include "worker/db/drift.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace lethe;

namespace {

// A seller app's migration: PII-looking columns, free text, a JSON payload, a number, and a
// table of notes that references orders.
void migrate_app(db::Session& s) {
  s.exec("ALTER TABLE orders ADD COLUMN gift_message text, ADD COLUMN \"buyerPhoneAlt\" "
         "varchar(40), ADD COLUMN payload jsonb, ADD COLUMN loyalty_points integer");
  s.exec("CREATE TABLE order_notes (note_id bigserial PRIMARY KEY, amazon_order_id text NOT "
         "NULL REFERENCES orders ON DELETE CASCADE, body text)");
}

nlohmann::json check_json(const test::TestDb& t, const std::filesystem::path& cfg = {}) {
  test::RunResult r = t.lethe("check --json", cfg);
  INFO(r.err);
  REQUIRE((r.exit == 0 || r.exit == 1));
  return nlohmann::json::parse(r.out);
}

long long approvals(db::Session& s) {
  return s
      .exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'config approve' AND "
            "exit_reason = 'approved'")
      .integer(0, 0);
}

} // namespace

TEST_CASE("drift: a migration adding PII-looking columns, free text, a jsonb payload and a "
          "referencing table is an alarm until mapped or declared and approved") {
  test::TestDb t("drift_alarm", 0);
  t.make_archive_keys(); // config check reads the public keys the configuration names
  t.migrate_and_grant();
  t.approve();
  auto s = t.admin();
  test::RunResult before = t.lethe("check");
  INFO(before.out + before.err);
  REQUIRE(before.exit == 0);
  REQUIRE(approvals(*s) == 1);

  migrate_app(*s);
  test::RunResult r = t.lethe("check");
  INFO(r.out + r.err);
  CHECK(r.exit == 1);
  CHECK(r.out.find("ALARM unmentioned_column public.orders.gift_message (text, added since the "
                   "approval), PII candidate by name and type") != std::string::npos);
  CHECK(r.out.find("ALARM unmentioned_column public.orders.buyerPhoneAlt") != std::string::npos);
  CHECK(r.out.find("ALARM unmentioned_column public.orders.payload (jsonb") != std::string::npos);
  CHECK(r.out.find("ALARM table_added public.order_notes") != std::string::npos);
  CHECK(r.out.find("note  column_added public.orders.loyalty_points (integer)") !=
        std::string::npos);
  CHECK(r.out.find("HINT: map gift_message in the PII map's entry for public.orders") !=
        std::string::npos);
  nlohmann::json j = check_json(t);
  CHECK(j["schema_drift_alarms"] == 4);
  CHECK(j["ok"] == false);

  // config check lists the same drift; the map itself still matches the database.
  test::RunResult cc = t.lethe("config check");
  INFO(cc.err);
  CHECK(cc.exit == 0);
  CHECK(cc.out.find("ALARM unmentioned_column public.orders.gift_message") != std::string::npos);

  // An approval never covers a column the map does not mention: refused, nothing recorded.
  test::RunResult refused = t.lethe("config approve --operator alice --reason 'release 42'");
  CHECK(refused.exit == 78);
  CHECK(refused.err.find("public.orders.gift_message (text") != std::string::npos);
  CHECK(refused.err.find("HINT:") != std::string::npos);
  CHECK(approvals(*s) == 1);
  CHECK(t.lethe("config approve --reason 'release 42'").exit == 64);

  // The map declares the new columns (a real map would map buyerPhoneAlt); then approve.
  std::string text = t.config_text();
  const std::string root_np = "not_pii = []";
  REQUIRE(text.find(root_np) != std::string::npos);
  text.replace(text.find(root_np), root_np.size(),
               "not_pii = [\"gift_message\", \"buyerPhoneAlt\", \"payload\"]");
  std::filesystem::path cfg = t.write_config("declared.toml", text);
  nlohmann::json declared = check_json(t, cfg);
  CHECK(declared["schema_drift_alarms"] == 1); // order_notes still needs an approval

  test::RunResult ok = t.lethe("config approve --operator alice --reason 'release 42'", cfg);
  INFO(ok.out + ok.err);
  REQUIRE(ok.exit == 0);
  CHECK(ok.out.find("approved: table_added public.order_notes") != std::string::npos);
  CHECK(ok.out.find("approved: column_added public.orders.gift_message") != std::string::npos);
  CHECK(t.lethe("check", cfg).exit == 0);
  nlohmann::json after = check_json(t, cfg);
  CHECK(after["schema_drift_alarms"] == 0);
  CHECK(after["schema_drift"].empty());

  db::Rows rec = s->exec("SELECT actor, kind, details::jsonb->>'reason', "
                         "jsonb_array_length(details::jsonb->'items') FROM lethe.audit_log WHERE "
                         "job = 'config approve' ORDER BY seq DESC LIMIT 1");
  CHECK(rec.text(0, 0) == "alice");
  CHECK(rec.text(0, 1) == "manual");
  CHECK(rec.text(0, 2) == "release 42");
  CHECK(rec.integer(0, 3) == 5); // four columns and a table

  // A column the approval saw, later dropped and retyped elsewhere, is listed, not an alarm.
  s->exec("ALTER TABLE orders DROP COLUMN loyalty_points");
  s->exec("ALTER TABLE order_notes ALTER COLUMN note_id TYPE numeric");
  nlohmann::json changed = check_json(t, cfg);
  CHECK(changed["schema_drift_alarms"] == 0);
  CHECK(changed["schema_drift"].size() == 2);
  // A text column added to the approved neighbouring table is an alarm again.
  s->exec("ALTER TABLE order_notes ADD COLUMN author_email text");
  CHECK(check_json(t, cfg)["schema_drift_alarms"] == 1);
}

TEST_CASE("drift: the purge runs on drift and its record and output carry the count, and a "
          "tampered approval is caught by audit verify") {
  test::TestDb t("drift_purge", 0);
  t.migrate_and_grant();
  t.approve();
  auto s = t.admin();
  s->exec("ALTER TABLE shipping_addresses ADD COLUMN delivery_instructions text");
  test::RunResult p = t.lethe("purge --json");
  INFO(p.out + p.err);
  REQUIRE(p.exit == 0);
  CHECK(nlohmann::json::parse(p.out)["schema_drift_alarms"] == 1);
  db::Rows rec = s->exec("SELECT counts::jsonb->>'schema_drift_alarms' FROM lethe.audit_log "
                         "WHERE job = 'purge' ORDER BY seq DESC LIMIT 1");
  CHECK(rec.text(0, 0) == "1");
  CHECK(t.lethe("purge").out.find("schema drift: 1 items") != std::string::npos);

  REQUIRE(t.lethe("audit verify").exit == 0);
  s->exec("ALTER TABLE lethe.audit_log DISABLE TRIGGER USER");
  s->exec("UPDATE lethe.audit_log SET details = replace(details, 'buyer_name', 'buyer_nam') "
          "WHERE job = 'config approve'");
  s->exec("ALTER TABLE lethe.audit_log ENABLE TRIGGER USER");
  test::RunResult v = t.lethe("audit verify");
  CHECK(v.exit != 0);
}

TEST_CASE("drift: PII candidates by name (snake and camel case, word boundaries) and by type") {
  for (const char* yes : {"gift_message", "buyerPhoneAlt", "IPAddress", "zip", "shipping_city",
                          "notes", "BuyerEmail", "date_of_birth", "vat_number", "LastName"}) {
    INFO(yes);
    CHECK(db::pii_like_name(yes));
  }
  for (const char* no : {"tip_amount", "nameplate", "marketplace_id", "description", "asin",
                         "title", "shipment_id", "zipper"}) {
    INFO(no);
    CHECK_FALSE(db::pii_like_name(no));
  }
  for (const char* yes : {"text", "character varying(40)", "character(3)", "jsonb", "json", "inet",
                          "text[]", "citext"}) {
    INFO(yes);
    CHECK(db::pii_capable_type(yes));
  }
  for (const char* no : {"integer", "bigint", "boolean", "timestamp with time zone", "date",
                         "numeric(12,2)", "uuid"}) {
    INFO(no);
    CHECK_FALSE(db::pii_capable_type(no));
  }
  CHECK(db::candidate_rating({"gift_message", "text", false}) == "name and type");
  CHECK(db::candidate_rating({"body", "text", false}) == "type");
  CHECK(db::candidate_rating({"email_verified", "boolean", false}).empty());
}
