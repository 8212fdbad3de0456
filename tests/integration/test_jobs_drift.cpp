// C1 and schema drift: a migration that adds PII where the map does not look is an alarm of
// `lethe check` until the map says what it holds and an operator approves; the approval is
// evidence the audit chain covers.
#include "support/cluster.hpp"
#include "worker/db/drift.hpp"

#include <catch2/catch.hpp>
#include <map>
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

TEST_CASE("drift: config discover rates candidates across the database, counts what a sample "
          "looks like, names JSON keys, and prints no value") {
  test::TestDb t("drift_discover", 40);
  t.migrate_and_grant();
  auto s = t.admin();
  std::vector<std::string> pii = t.pii_values();
  const std::string note = "write to carol.notes@example.org or call +49 170 1234567; refund to "
                           "DE89370400440532013000; ship to 12 Baker Street";
  s->exec("CREATE TABLE public.order_notes (note_id bigint PRIMARY KEY, body text, "
          "created_at timestamptz)");
  s->exec("INSERT INTO order_notes SELECT g, $1, now() FROM generate_series(1, 30) g", {note});
  s->exec("ALTER TABLE orders ADD COLUMN payload jsonb");
  s->exec("UPDATE orders SET payload = jsonb_build_object('BuyerInfo', jsonb_build_object("
          "'BuyerEmail', buyer_email, 'BuyerName', buyer_name), 'OrderTotal', '{\"Amount\": "
          "\"1.00\"}'::jsonb, 'dave.keys@example.net', 1)");
  pii.insert(pii.end(), {"carol.notes@example.org", "1234567", "DE89370400440532013000",
                         "Baker Street", "dave.keys@example.net"});

  test::RunResult r = t.lethe("config discover --sample 100 --json");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  test::require_no_pii(r.out + r.err, pii);
  nlohmann::json j = nlohmann::json::parse(r.out);
  std::map<std::string, nlohmann::json> by;
  for (const nlohmann::json& c : j["candidates"]) {
    by[c["table"].get<std::string>() + "." + c["column"].get<std::string>()] = c;
  }
  REQUIRE(by.count("public.order_notes.body") == 1);
  nlohmann::json body = by["public.order_notes.body"];
  CHECK(body["rating"] == "type");
  CHECK(body["map"] == "unmapped");
  CHECK(body["sampled"] == 30);
  for (const char* kind : {"email", "phone", "iban", "address"}) {
    INFO(kind);
    CHECK(body["looks_like"][kind] == 30);
  }
  CHECK(by.count("public.order_notes.created_at") == 0); // a timestamp is no candidate
  CHECK(by["public.orders.buyer_email"]["map"] == "mapped");
  CHECK(by["public.orders.buyer_email"]["sampled"].get<int>() > 0);
  CHECK(by["public.orders.buyer_email"]["looks_like"]["email"] ==
        by["public.orders.buyer_email"]["sampled"]);
  CHECK(by["public.orders.seller_id"]["map"] == "mentioned");
  CHECK(by["public.shipping_addresses.country_code"]["map"] == "not_pii");
  CHECK(by["public.order_items.title"]["looks_like"]["email"] == 0);
  nlohmann::json payload = by["public.orders.payload"];
  CHECK(payload["map"] == "unmapped");
  CHECK(payload["json_keys"] ==
        nlohmann::json::array({"BuyerInfo.BuyerEmail", "BuyerInfo.BuyerName"}));
  CHECK(j["unmapped"].get<int>() >= 2);

  test::RunResult text = t.lethe("config discover");
  REQUIRE(text.exit == 0);
  CHECK(text.out.find("public.order_notes.body  text  candidate by type  unmapped") !=
        std::string::npos);
  CHECK(text.out.find("HINT:") != std::string::npos);
  test::require_no_pii(text.out + text.err, pii);
}
