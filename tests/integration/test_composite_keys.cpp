// A schema unlike the sample: no one-column keys. Orders are keyed by (region_code, order_no), the
// same order_no exists in two regions, shipments by (region_code, order_no, shipment_no), their
// contacts link by all three, and order items (keep) by both. Purge and archive on a real TLS
// server must take exactly the right rows.
#include "support/cluster.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/store/copies.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

const std::string k_schema = R"(
CREATE SCHEMA shop;
CREATE TABLE shop.orders (
  region_code text NOT NULL, order_no bigint NOT NULL, buyer_email text, buyer_name text,
  status text NOT NULL, shipped_at timestamptz, updated_at timestamptz NOT NULL,
  is_business_order boolean NOT NULL DEFAULT false, PRIMARY KEY (region_code, order_no));
CREATE INDEX ON shop.orders (shipped_at, region_code, order_no);
CREATE INDEX ON shop.orders (status, updated_at);
CREATE TABLE shop.shipments (
  region_code text NOT NULL, order_no bigint NOT NULL, shipment_no int NOT NULL,
  recipient text, city text, PRIMARY KEY (region_code, order_no, shipment_no),
  FOREIGN KEY (region_code, order_no) REFERENCES shop.orders);
CREATE TABLE shop.shipment_contacts (
  contact_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ship_region text NOT NULL,
  ship_order bigint NOT NULL, ship_no int NOT NULL, phone text,
  FOREIGN KEY (ship_region, ship_order, ship_no) REFERENCES shop.shipments);
CREATE INDEX ON shop.shipment_contacts (ship_region, ship_order, ship_no);
CREATE TABLE shop.order_items (
  region_code text NOT NULL, order_no bigint NOT NULL, item_no int NOT NULL, sku text NOT NULL,
  PRIMARY KEY (region_code, order_no, item_no),
  FOREIGN KEY (region_code, order_no) REFERENCES shop.orders);
)";

const std::string k_map = R"([pii]
hmac_key_file = "@DIR@/hmac.key"

[pii.root]
table = "shop.orders"
key = ["region_code", "order_no"]
shipped_at = "shipped_at"
status = "status"
columns = [
  { name = "buyer_email", strategy = "hmac", category = "email" },
  { name = "buyer_name", strategy = "constant", value = "[redacted]", category = "name" },
]

[[pii.root.never_shipped]]
statuses = ["Canceled"]
since = "updated_at"
days = 30

[[pii.children]]
table = "shop.shipments"
parent = "shop.orders"
link = ["region_code", "order_no"]
key = ["region_code", "order_no", "shipment_no"]
columns = [
  { name = "recipient", strategy = "hmac", category = "name" },
  { name = "city", strategy = "null", category = "address" },
]

[[pii.children]]
table = "shop.shipment_contacts"
parent = "shop.shipments"
link = ["ship_region", "ship_order", "ship_no"]
columns = [{ name = "phone", strategy = "null", category = "phone" }]

[[pii.children]]
table = "shop.order_items"
parent = "shop.orders"
link = ["region_code", "order_no"]
strategy = "keep"
)";

// (region, order_no, shipped age or "" for never shipped, business). EU/1 and US/1 share an
// order number; only EU/1, US/1 and the cancelled US/3 are due; US/2 is due but held.
struct Order {
  std::string region;
  int no;
  std::string shipped_age;
  bool business;
};
const Order k_orders[] = {
    {"EU", 1, "60 days", false}, {"US", 1, "60 days", false}, {"EU", 2, "5 days", false},
    {"US", 2, "60 days", true},  {"US", 3, "", false},
};

void load(db::Session& s) {
  s.exec(k_schema);
  for (const Order& o : k_orders) {
    std::string tag = o.region + "-" + std::to_string(o.no);
    s.exec("INSERT INTO shop.orders VALUES ($1, $2::bigint, $3, $4, $5, CASE WHEN $6 = '' THEN "
           "NULL ELSE $7::timestamptz - $6::interval END, $7::timestamptz - interval '45 days', "
           "$8::boolean)",
           {o.region, std::to_string(o.no), "buyer-" + tag + "@example.com", "Buyer " + tag,
            o.shipped_age.empty() ? "Canceled" : "Shipped", o.shipped_age, k_as_of,
            o.business ? "true" : "false"});
    for (int ship = 1; ship <= 2; ++ship) {
      std::string st = tag + "/" + std::to_string(ship);
      s.exec(
          "INSERT INTO shop.shipments VALUES ($1, $2::bigint, $3::int, $4, $5)",
          {o.region, std::to_string(o.no), std::to_string(ship), "Recipient " + st, "City " + st});
      s.exec("INSERT INTO shop.shipment_contacts (ship_region, ship_order, ship_no, phone) "
             "VALUES ($1, $2::bigint, $3::int, $4), ($1, $2::bigint, $3::int, NULL)",
             {o.region, std::to_string(o.no), std::to_string(ship), "+1-555-" + st});
    }
    s.exec("INSERT INTO shop.order_items VALUES ($1, $2::bigint, 1, 'SKU-1')",
           {o.region, std::to_string(o.no)});
  }
}

// "region-no" of the orders whose rows in `table` (alias x, owner columns `owner`) hold `what`.
std::vector<std::string> owners(db::Session& s, const std::string& sql) {
  db::Rows r = s.exec(sql);
  std::vector<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(r.text(i, 0));
  }
  return out;
}

std::string pseudonym(const std::string& v) {
  return "hmac:" + crypto::hex(crypto::hmac_sha256("test-hmac-key", v));
}

} // namespace

TEST_CASE("composite keys: archive and purge take exactly the right rows of a schema keyed by "
          "(region_code, order_no)") {
  test::TestDb t("composite_keys", 0);
  t.make_archive_keys();
  auto s = t.admin();
  load(*s);
  std::string text = t.config_text();
  text = text.substr(0, text.find("[pii]\n")) + k_map;
  text.replace(text.find("@DIR@"), 5, t.dir().string());
  text = test::set_key(text, "max_fraction_of_table", "1.0");
  auto cfg = t.write_config("lethe.toml", text); // the default config, so grants see the map
  t.migrate_and_grant();
  std::vector<std::string> pii = t.pii_values();
  REQUIRE(pii.size() > 20);

  test::RunResult check = t.lethe("config check");
  INFO(check.err);
  CHECK(check.exit == 0);
  std::string items_before = test::table_digest(*s, "shop.order_items");
  std::string held_before =
      s->exec("SELECT md5(string_agg(x::text, E'\\n' ORDER BY x::text)) FROM shop.shipments x "
              "WHERE region_code = 'US' AND order_no = 2")
          .text(0, 0);

  // The archive holds the held order US/2 (not EU/2, not US/1), then sanitizes it.
  test::RunResult a = t.lethe("archive run --json --as-of '" + k_as_of + "'");
  INFO(a.err);
  REQUIRE(a.exit == 0);
  CHECK(owners(*s, "SELECT order_key FROM lethe.archived_orders") ==
        std::vector<std::string>{"[\"US\", \"2\"]"});
  CHECK(owners(*s, "SELECT region_code || '-' || order_no FROM shop.orders WHERE buyer_name = "
                   "'[redacted]' ORDER BY 1") == std::vector<std::string>{"US-2"});

  // The purge takes the two due orders that share order_no 1 and the cancelled one, all levels.
  test::RunResult p = t.lethe("purge --json --as-of '" + k_as_of + "'");
  INFO(p.err);
  REQUIRE(p.exit == 0);
  CHECK(owners(*s, "SELECT region_code || '-' || order_no FROM shop.orders WHERE buyer_name = "
                   "'[redacted]' ORDER BY 1") ==
        std::vector<std::string>{"EU-1", "US-1", "US-2", "US-3"});
  CHECK(owners(*s, "SELECT DISTINCT region_code || '-' || order_no FROM shop.shipments WHERE "
                   "city IS NOT NULL ORDER BY 1") == std::vector<std::string>{"EU-2"});
  CHECK(owners(*s, "SELECT DISTINCT ship_region || '-' || ship_order FROM "
                   "shop.shipment_contacts WHERE phone IS NOT NULL ORDER BY 1") ==
        std::vector<std::string>{"EU-2"});
  // Each row's pseudonym is of its own value; the order not due is untouched.
  CHECK(s->exec("SELECT recipient FROM shop.shipments WHERE region_code = 'US' AND order_no = 1 "
                "AND shipment_no = 2")
            .text(0, 0) == pseudonym("Recipient US-1/2"));
  CHECK(s->exec("SELECT buyer_email FROM shop.orders WHERE region_code = 'EU' AND order_no = 1")
            .text(0, 0) == pseudonym("buyer-EU-1@example.com"));
  CHECK(s->exec("SELECT buyer_email FROM shop.orders WHERE region_code = 'EU' AND order_no = 2")
            .text(0, 0) == "buyer-EU-2@example.com");
  CHECK(test::table_digest(*s, "shop.order_items") == items_before);
  // The purge's evidence counts the rows it changed: 3 orders, 6 shipments, 6 contacts with a
  // phone (the NULL ones held no PII).
  db::Rows counts = s->exec("SELECT counts::jsonb #>> '{rows_sanitized_by_table,shop.orders}', "
                            "counts::jsonb #>> '{rows_sanitized_by_table,shop.shipments}', "
                            "counts::jsonb #>> '{rows_sanitized_by_table,shop.shipment_contacts}' "
                            "FROM lethe.audit_log WHERE job = "
                            "'purge' AND kind = 'run' ORDER BY seq DESC LIMIT 1");
  REQUIRE(counts.size() == 1);
  CHECK(counts.text(0, 0) == "3");
  CHECK(counts.text(0, 1) == "6");
  CHECK(counts.text(0, 2) == "6");
  test::require_no_pii(p.out + p.err + a.out + a.err, pii);

  // The archive restores the held order's rows exactly as they were.
  std::string id = s->exec("SELECT archive_id FROM lethe.archives").text(0, 0);
  test::RunResult r =
      t.lethe("archive restore " + id + " --private-key " + (t.dir() / "archive.pem").string() +
              " --into-db scratch --reason 'composite test' --operator dana");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(test::table_digest(*s, "scratch.shop_shipments") == held_before);
  CHECK(t.lethe("audit verify").exit == 0);

  // The copies catalog finds the archive by the held order's canonical key, and only by it.
  std::vector<db::store::CopyRow> copies = db::store::copies_holding(*s, {"[\"US\", \"2\"]"});
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].kind == "archive");
  CHECK(copies[0].id == id);
  CHECK(copies[0].state == "spooled");
  CHECK(copies[0].sha256 == s->exec("SELECT sha256 FROM lethe.archives").text(0, 0));
  CHECK(db::store::copies_holding(*s, {"[\"EU\", \"2\"]", "[\"US\", \"1\"]"}).empty());
  REQUIRE(t.lethe("archive mark-cold " + id + " --operator vault").exit == 0);
  CHECK(db::store::copies_holding(*s, {"[\"US\", \"2\"]"}).at(0).state == "cold");
  CHECK(t.lethe("purge --json --as-of '" + k_as_of + "'").out.find("\"orders_done\":0") !=
        std::string::npos);
}
