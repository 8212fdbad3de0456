// C1 inside documents: a jsonb column holding SP-API's getOrder response, mapped with strategy
// json. The purge takes out exactly the mapped paths and pseudonymizes the hmac ones; every other
// key, a JSON null and an absent key stay as they are; the counts are the rows that changed; an
// archive keeps the document as it was and restores it.
#include "support/cluster.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

// The example map with orders.payload (jsonb) mapped by strategy json, and orders.extra (json)
// when `extra`, as the default config of `t`.
void map_payload(const test::TestDb& t, bool extra = false) {
  std::string text = t.config_text();
  const std::string anchor = "[[pii.root.columns]]\nname = \"buyer_email\"";
  REQUIRE(text.find(anchor) != std::string::npos);
  // An inline table cannot follow [[pii.root.columns]] tables: add one more of them.
  text.replace(
      text.find(anchor), anchor.size(),
      std::string(
          "[[pii.root.columns]]\nname = \"payload\"\nstrategy = \"json\"\ncategory = "
          "\"document\"\nremove = "
          "[\"ShippingAddress\", \"BuyerInfo.BuyerName\", \"BuyerInfo.BuyerTaxInfo\"]\nhmac = "
          "[\"BuyerInfo.BuyerEmail\"]\n\n") +
          (extra ? "[[pii.root.columns]]\nname = \"extra\"\nstrategy = \"json\"\ncategory = "
                   "\"document\"\nremove = "
                   "[\"Email\"]\n\n"
                 : "") +
          anchor);
  text = test::set_key(text, "max_fraction_of_table", "1.0");
  t.write_config("lethe.toml", text);
}

std::string pseudonym(const std::string& v) {
  return "hmac:" + crypto::hex(crypto::hmac_sha256("test-hmac-key", v));
}

// SP-API getOrder's shape, trimmed: the buyer's data in BuyerInfo and ShippingAddress.
std::string full_doc(const std::string& id) {
  return R"({"AmazonOrderId": ")" + id +
         R"(", "OrderStatus": "Shipped", "OrderTotal": {"Amount": "19.99", "CurrencyCode": "USD"},
  "BuyerInfo": {"BuyerEmail": "buyer-)" +
         id + R"(@marketplace.amazon.com", "BuyerName": "Jo )" + id +
         R"(", "BuyerCounty": "King", "BuyerTaxInfo": {"CompanyLegalName": "Jo Co )" + id +
         R"("}},
  "ShippingAddress": {"Name": "Jo )" +
         id + R"(", "AddressLine1": "1 Pine St", "City": "Seattle", "Phone": "+1 206 555 01)" +
         id.substr(id.size() - 2) + R"("}, "IsPrime": false})";
}

} // namespace

TEST_CASE("json: the purge takes out exactly the mapped paths and pseudonymizes the hmac ones, "
          "other keys, JSON nulls and absent keys stay, counts are rows that changed") {
  test::TestDb t("json_purge", 0);
  auto s = t.admin();
  s->exec("ALTER TABLE orders ADD COLUMN payload jsonb, ADD COLUMN extra json");
  map_payload(t, true);
  t.migrate_and_grant();
  // Every order's other PII is already gone, so the root's count is the documents that change.
  struct Case {
    std::string id;
    std::string shipped_age;
    std::string doc; // empty: SQL NULL
  };
  const std::vector<Case> cases = {
      {"A-full-40d", "40 days", full_doc("A-full-40d")},
      {"B-nulls-40d", "40 days",
       R"({"BuyerInfo": {"BuyerEmail": null, "BuyerName": null}, "ShippingAddress": null, "N": 1})"},
      {"C-absent-40d", "40 days",
       R"({"OrderStatus": "Shipped", "Items": [1, 2], "GiftMessage": "happy birthday"})"},
      {"D-shapes-40d", "40 days",
       R"({"BuyerInfo": ["BuyerName", "BuyerEmail"], "ShippingAddress": null})"},
      {"E-scalar-40d", "40 days", R"("just a string")"},
      {"F-done-40d", "40 days",
       R"({"BuyerInfo": {"BuyerEmail": ")" + pseudonym("x@y.z") + R"("}})"},
      {"G-number-40d", "40 days", R"({"BuyerInfo": {"BuyerEmail": 12025550123, "Keep": true}})"},
      {"H-sqlnull-40d", "40 days", ""},
      {"I-young-10d", "10 days", full_doc("I-young-10d")},
  };
  for (const Case& c : cases) {
    test::insert_order(*s, k_as_of, {c.id, "Shipped", c.shipped_age, c.shipped_age, false, false});
    if (!c.doc.empty()) {
      s->exec("UPDATE orders SET payload = $2::jsonb WHERE amazon_order_id = $1", {c.id, c.doc});
    }
  }
  // Scalar documents (JSON null, a string) in rows written for their other PII columns: the
  // documents stay as they are (jsonb_set and #- refuse a scalar whatever the path).
  test::insert_order(*s, k_as_of, {"J-null-40d", "Shipped", "40 days", "40 days"});
  test::insert_order(*s, k_as_of, {"K-string-40d", "Shipped", "40 days", "40 days"});
  s->exec("UPDATE orders SET payload = 'null' WHERE amazon_order_id = 'J-null-40d'");
  s->exec("UPDATE orders SET payload = '\"text\"' WHERE amazon_order_id = 'K-string-40d'");
  // A json (not jsonb) column: written back as json, its other keys as they were.
  s->exec("UPDATE orders SET extra = '{\"Email\": \"jo@example.com\", \"Keep\": [1]}' WHERE "
          "amazon_order_id = 'A-full-40d'");
  const std::vector<std::string> pii = {"buyer-A-full-40d@marketplace.amazon.com",
                                        "Jo A-full-40d",
                                        "Jo Co A-full-40d",
                                        "12025550123",
                                        "jo@example.com",
                                        "b-J-null-40d@example.org",
                                        "b-K-string-40d@example.org"};

  // discover names the sampled keys that look like PII, and those no path of the map reaches.
  test::RunResult d = t.lethe("config discover --sample 100 --json");
  INFO(d.err);
  REQUIRE(d.exit == 0);
  test::require_no_pii(d.out + d.err, pii);
  CHECK(d.out.find("happy birthday") == std::string::npos);
  for (const nlohmann::json& c : nlohmann::json::parse(d.out)["candidates"]) {
    if (c["column"] == "payload") {
      CHECK(c["map"] == "mapped");
      std::vector<std::string> keys = c["json_keys"];
      CHECK(std::find(keys.begin(), keys.end(), "BuyerInfo.BuyerEmail") != keys.end());
      CHECK(std::find(keys.begin(), keys.end(), "ShippingAddress.Phone") != keys.end());
      CHECK(c["json_keys_unmapped"] == nlohmann::json::array({"GiftMessage"}));
    }
  }
  CHECK(t.lethe("config discover --sample 100")
            .out.find("NOT REACHED by the map's paths: GiftMessage") != std::string::npos);

  test::RunResult r = t.lethe("purge --json --as-of '" + k_as_of + "'");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  nlohmann::json out = nlohmann::json::parse(r.out);
  long long root_rows = -1;
  for (const nlohmann::json& tb : out["tables"]) {
    if (tb["table"] == "public.orders") {
      root_rows = tb["rows_sanitized"].get<long long>();
    }
  }
  CHECK(root_rows == 4); // A and G by their documents, J and K by their other columns

  auto doc = [&](const std::string& id) {
    return s->exec("SELECT payload::text FROM orders WHERE amazon_order_id = $1", {id})
        .at(0, 0)
        .value_or("<NULL>");
  };
  auto same = [&](const std::string& id, const std::string& expected) {
    return s->exec(
                "SELECT payload IS NOT DISTINCT FROM $2::jsonb FROM orders WHERE amazon_order_id "
                "= $1",
                {id, expected})
               .text(0, 0) == "t";
  };
  INFO(doc("A-full-40d"));
  CHECK(same("A-full-40d", R"({"AmazonOrderId": "A-full-40d", "OrderStatus": "Shipped",
    "OrderTotal": {"Amount": "19.99", "CurrencyCode": "USD"}, "IsPrime": false,
    "BuyerInfo": {"BuyerEmail": ")" +
                               pseudonym("buyer-A-full-40d@marketplace.amazon.com") +
                               R"(", "BuyerCounty": "King"}})"));
  for (const Case& c : cases) {
    if (c.id[0] == 'A' || c.id[0] == 'G') {
      continue;
    }
    INFO(c.id << ": " << doc(c.id));
    CHECK((c.doc.empty() ? doc(c.id) == "<NULL>" : same(c.id, c.doc)));
  }
  CHECK(doc("J-null-40d") == "null");
  CHECK(doc("K-string-40d") == "\"text\"");
  CHECK(
      s->exec("SELECT buyer_name FROM orders WHERE amazon_order_id = 'K-string-40d'").text(0, 0) ==
      "[redacted]");
  CHECK(s->exec("SELECT extra::text FROM orders WHERE amazon_order_id = 'A-full-40d'").text(0, 0) ==
        R"({"Keep": [1]})");
  // A number is pseudonymized by its JSON text; a sibling key stays.
  INFO(doc("G-number-40d"));
  CHECK(same("G-number-40d", R"({"BuyerInfo": {"BuyerEmail": ")" + pseudonym("12025550123") +
                                 R"(", "Keep": true}})"));

  // Nothing left to do: a second run changes no document, and the state view agrees.
  test::RunResult again = t.lethe("purge --json --as-of '" + k_as_of + "'");
  REQUIRE(again.exit == 0);
  CHECK(nlohmann::json::parse(again.out)["rows_sanitized"] == 0);
  CHECK(s->exec("SELECT count(*) FROM lethe.pii_state_public_orders WHERE has_pii").integer(0, 0) ==
        1); // the young order I
  test::require_no_pii(r.out + r.err + again.out + again.err, pii);
  test::require_no_pii(
      s->exec("SELECT string_agg(l::text, E'\\n') FROM lethe.audit_log l").at(0, 0).value_or(""),
      pii);
}

TEST_CASE("json: a held order's document is archived whole, restored equal, then sanitized, "
          "and config check names a json column that is not json and a malformed path") {
  test::TestDb t("json_archive", 0);
  t.make_archive_keys();
  auto s = t.admin();
  s->exec("ALTER TABLE orders ADD COLUMN payload jsonb");
  map_payload(t);
  t.migrate_and_grant();
  test::insert_order(*s, k_as_of, {"H-held-40d", "Shipped", "40 days", "40 days", true, false});
  s->exec("UPDATE orders SET payload = $1::jsonb", {full_doc("H-held-40d")});
  const std::string before =
      s->exec("SELECT payload::text FROM orders WHERE amazon_order_id = 'H-held-40d'").text(0, 0);

  // The purge waits for the archive; the archive keeps the document as it was.
  REQUIRE(t.lethe("purge --as-of '" + k_as_of + "'").exit == 0);
  CHECK(s->exec("SELECT payload::text FROM orders").text(0, 0) == before);
  test::RunResult a = t.lethe("archive run --json --as-of '" + k_as_of + "'");
  INFO(a.err);
  REQUIRE(a.exit == 0);
  CHECK(s->exec("SELECT payload ? 'ShippingAddress' FROM orders").text(0, 0) == "f");
  std::string id = s->exec("SELECT archive_id FROM lethe.archives").text(0, 0);
  test::RunResult r =
      t.lethe("archive restore " + id + " --private-key " + (t.dir() / "archive.pem").string() +
              " --into-db scratch --reason 'tax audit' --operator dana");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(s->exec("SELECT payload::text FROM scratch.public_orders").text(0, 0) == before);

  // config check: strategy json on a json column is fine, on a text column is not; a path that
  // is not well formed is refused at its own file:line:column.
  std::string text = util::read_file(t.config());
  std::string on_text = text;
  on_text.replace(on_text.find("name = \"payload\""), 16, "name = \"buyer_name\"");
  const std::string constant_column = "[[pii.root.columns]]\nname = \"buyer_name\"\nstrategy = "
                                      "\"constant\"\nvalue = \"[redacted]\"\ncategory = "
                                      "\"name\"\n";
  on_text.replace(on_text.find(constant_column), constant_column.size(), "");
  test::RunResult bad_type = t.lethe("config check", t.write_config("on_text.toml", on_text));
  CHECK(bad_type.exit == 78);
  CHECK(bad_type.err.find("column 'buyer_name' is text; strategy json needs a json or jsonb "
                          "column") != std::string::npos);
  std::string bad_path = text;
  bad_path.replace(bad_path.find("\"BuyerInfo.BuyerName\""), 21, "\"BuyerInfo..BuyerName\"");
  test::RunResult malformed = t.lethe("config check", t.write_config("bad_path.toml", bad_path));
  CHECK(malformed.exit == 78);
  CHECK(malformed.err.find("bad_path.toml:") != std::string::npos);
  CHECK(malformed.err.find(": JSON path 'BuyerInfo..BuyerName' is not well formed") !=
        std::string::npos);
  CHECK(malformed.err.find("HINT:") != std::string::npos);
}
