// The sanitize engine's plan is built from the PII map and catalog facts alone: its SQL is
// checked here without a server, on a three-level schema with keep tables.
#include "worker/sanitize/plan.hpp"
#include "worker/settings/settings.hpp"
#include "worker/util/error.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

namespace {

// orders -> shipments -> shipment_contacts (PII at every level); order_items (keep) below the
// root and item_fees (keep) below it.
const std::string k_map = R"([database]
dsn = "host=db port=5432 dbname=orders"
sslrootcert = "/etc/ca.pem"
[pii]
hmac_key_file = "/etc/lethe/hmac.key"
[pii.root]
table = "sales.orders"
key = "order_no"
shipped_at = "shipped_at"
status = "status"
columns = [{ name = "buyer_email", strategy = "hmac" }]
[[pii.root.never_shipped]]
statuses = ["Canceled"]
since = "updated_at"
days = 30
[[pii.children]]
table = "sales.shipments"
parent = "sales.orders"
link = "order_no"
key = "shipment_id"
columns = [{ name = "recipient", strategy = "constant", value = "[redacted]" }]
[[pii.children]]
table = "sales.shipment_contacts"
parent = "sales.shipments"
link = "shipment_id"
columns = [{ name = "phone", strategy = "null" }]
[[pii.children]]
table = "sales.order_items"
parent = "sales.orders"
link = "order_no"
key = "item_id"
strategy = "keep"
[[pii.children]]
table = "sales.item_fees"
parent = "sales.order_items"
link = "item_id"
strategy = "keep"
)";

db::CatalogFacts facts(bool contacts_have_id = true) {
  db::CatalogFacts f;
  f.tables.push_back(
      {"sales.orders",
       {{"order_no", "bigint"}, {"buyer_email", "text"}, {"shipped_at", "timestamptz"}},
       settings::Columns{"order_no"}});
  f.tables.push_back({"sales.shipments",
                      {{"shipment_id", "uuid"}, {"order_no", "bigint"}, {"recipient", "text"}},
                      settings::Columns{"shipment_id"}});
  f.tables.push_back(
      {"sales.shipment_contacts",
       {{"contact_id", "integer"}, {"shipment_id", "uuid"}, {"phone", "text"}},
       contacts_have_id ? std::optional<settings::Columns>({"contact_id"}) : std::nullopt});
  return f;
}

bool has(const std::string& sql, const std::string& part) {
  return sql.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("plan: keep tables are separate from the PII tables and named as keep") {
  settings::Settings s = settings::load_from_string(k_map, "t.toml");
  REQUIRE(s.pii_tables().size() == 3);
  REQUIRE(s.kept_tables().size() == 2);
  CHECK(s.kept_tables()[1]->table == "sales.item_fees");
  CHECK(s.find_table("sales.item_fees") != nullptr);
}

TEST_CASE("plan: sanitize walks due orders by their clocks and leaves keep tables alone") {
  settings::Settings s = settings::load_from_string(k_map, "t.toml");
  sanitize::Plan p = sanitize::build_plan(s, facts(), sanitize::Selection::due());
  CHECK(p.key_type == "bigint");
  REQUIRE(p.lanes.size() == 2);
  CHECK(p.lanes[0].name == "shipped");
  CHECK(has(p.lanes[0].next, "(r.\"shipped_at\", r.\"order_no\") > ($5::timestamptz, $6::bigint)"));
  CHECK(p.lanes[1].name == "never shipped: Canceled");
  CHECK(has(p.lanes[1].first, "r.\"status\" = 'Canceled'"));
  CHECK(has(p.guard, "r.due_at <= $2::timestamptz AND NOT r.held"));
  // Deepest first, the root last; no keep table.
  REQUIRE(p.steps.size() == 3);
  CHECK(p.steps[0].table->table == "sales.shipment_contacts");
  CHECK(p.steps[1].table->table == "sales.shipments");
  CHECK(p.steps[2].table->table == "sales.orders");
  // A grandchild belongs to a batch through its parent's key.
  CHECK(has(p.steps[0].sanitize, "\"shipment_id\" = ANY(ARRAY(SELECT"));
  CHECK(has(p.steps[0].sanitize, "= ANY($1::bigint[])"));
  CHECK(has(p.steps[0].sanitize, "\"phone\" = NULL"));
  CHECK(has(p.steps[0].sanitize, "RETURNING x.\"contact_id\"::text"));
  CHECK_FALSE(p.steps[0].deletes);
  // A constant keeps a NULL NULL, through the state view's null flag.
  CHECK(has(p.steps[1].sanitize, "CASE WHEN v.lethe_null_0 THEN NULL ELSE '[redacted]' END"));
  // hmac: computed in the same UPDATE as the constants, from the due-values view and the
  // session's key pads; a NULL or an earlier pseudonym is written back as it is.
  CHECK(p.steps[2].hmac);
  CHECK_FALSE(p.steps[1].hmac);
  // One view (the due-values view, with the state view's flags), so one lookup per row.
  CHECK(has(p.steps[2].sanitize, "FROM lethe.\"pii_due_sales_orders\" d, pg_temp.lethe_hmac_key k "
                                 "WHERE d.lethe_row_id = x.\"order_no\" AND d.has_pii AND "));
  CHECK_FALSE(has(p.steps[2].sanitize, "pii_state_"));
  CHECK(has(p.steps[2].sanitize,
            "\"buyer_email\" = CASE WHEN d.lethe_hmac_0 IS NULL OR (octet_length(d.lethe_hmac_0) "
            "= 69 AND d.lethe_hmac_0 ~ '^hmac:[0-9a-f]+$') THEN d.lethe_hmac_0 ELSE 'hmac:' || "
            "encode(sha256(k.opad || "
            "sha256(k.ipad || convert_to(d.lethe_hmac_0, 'UTF8'))), 'hex') END"));
  // The key itself is never in a statement.
  CHECK_FALSE(has(p.steps[2].sanitize, "$2"));
  // Orders still holding PII anywhere below are due: the walk looks into both PII children.
  CHECK(has(p.count_candidates, "lethe.\"pii_state_sales_shipments\""));
  CHECK(has(p.count_candidates, "lethe.\"pii_state_sales_shipment_contacts\""));
  CHECK_FALSE(has(p.count_candidates, "order_items"));
}

TEST_CASE("plan: erase takes exactly the named orders, due or not, and deletes every mapped row "
          "deepest first, keep tables included") {
  settings::Settings s = settings::load_from_string(k_map, "t.toml");
  sanitize::Plan p = sanitize::build_plan(s, facts(), sanitize::Selection::orders({"17", "42"}),
                                          sanitize::Action::erase);
  REQUIRE(p.lanes.size() == 1);
  CHECK(p.lanes[0].name == "orders");
  CHECK(has(p.lanes[0].first, "r.\"order_no\"::text = ANY('{\"17\",\"42\"}'::text[])"));
  CHECK_FALSE(has(p.lanes[0].first, "due_at"));
  CHECK_FALSE(has(p.guard, "due_at"));
  CHECK_FALSE(has(p.guard, "held"));
  std::vector<std::string> order;
  for (const sanitize::TableStep& st : p.steps) {
    order.push_back(st.table->table);
    CHECK(st.deletes);
    CHECK_FALSE(st.hmac);
    CHECK(st.sanitize.rfind("DELETE FROM ", 0) == 0);
  }
  CHECK(order == std::vector<std::string>{"sales.item_fees", "sales.order_items",
                                          "sales.shipment_contacts", "sales.shipments",
                                          "sales.orders"});
  // A keep grandchild reaches its order through the keep table above it.
  CHECK(has(p.steps[0].sanitize, "\"item_id\" = ANY(ARRAY(SELECT"));
  CHECK(has(p.steps[0].sanitize, "\"sales\".\"order_items\""));
}

TEST_CASE("plan: a request's erase walks its resolved orders in key order, and with held orders "
          "erased at once the root's DELETE counts the orders, otherwise the guard leaves held "
          "ones") {
  settings::Settings s = settings::load_from_string(k_map, "t.toml");
  s.requests.held_orders = "erase";
  sanitize::Plan p =
      sanitize::build_plan(s, facts(), sanitize::Selection::request(7), sanitize::Action::erase);
  REQUIRE(p.lanes.size() == 1);
  CHECK(has(p.lanes[0].first, "FROM lethe.request_orders ro WHERE ro.request_id = 7"));
  CHECK(has(p.lanes[0].first, "ORDER BY ro.order_key LIMIT $2"));
  CHECK_FALSE(p.lane_guards);
  CHECK(p.done_by_root_delete);
  CHECK(p.guard.empty());
  REQUIRE_FALSE(p.steps.empty());
  CHECK(p.steps.back().table->table == "sales.orders"); // the root last: its rows are the count
  s.requests.held_orders = "archive-then-erase";
  sanitize::Plan held =
      sanitize::build_plan(s, facts(), sanitize::Selection::request(7), sanitize::Action::erase);
  CHECK_FALSE(held.done_by_root_delete);
  CHECK(has(held.guard, "NOT r.held"));
}

TEST_CASE("plan: archived orders are the due ones some archive holds") {
  settings::Settings s = settings::load_from_string(k_map, "t.toml");
  sanitize::Plan p = sanitize::build_plan(s, facts(), sanitize::Selection::archived_due());
  CHECK(has(p.count_candidates,
            "lethe.archived_orders ao WHERE ao.order_key = r.\"order_no\"::text"));
  CHECK(has(p.lanes[0].first, "lethe.archived_orders"));
  CHECK(p.steps.size() == 3);
}

TEST_CASE("plan: a PII table whose rows cannot be told apart is refused before any work") {
  settings::Settings s = settings::load_from_string(k_map, "t.toml");
  try {
    sanitize::build_plan(s, facts(false), sanitize::Selection::due());
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::config);
    CHECK(std::string(e.what()).find("sales.shipment_contacts has no primary key") !=
          std::string::npos);
  }
  // Erasing needs no row identity: whole rows go.
  CHECK(sanitize::build_plan(s, facts(false), sanitize::Selection::orders({"1"}),
                             sanitize::Action::erase)
            .steps.size() == 5);
}

TEST_CASE("map: a keep table with PII columns, or a PII table below a keep table, is refused") {
  std::string with_columns = k_map;
  with_columns += "columns = [{ name = \"amount\", strategy = \"null\" }]\n";
  CHECK_THROWS_WITH(settings::load_from_string(with_columns, "t.toml"),
                    Catch::Contains("keep table sales.item_fees lists PII columns"));
  std::string below = k_map + R"([[pii.children]]
table = "sales.item_notes"
parent = "sales.order_items"
link = "item_id"
columns = [{ name = "note", strategy = "null" }]
)";
  CHECK_THROWS_WITH(settings::load_from_string(below, "t.toml"),
                    Catch::Contains("has the keep table sales.order_items as its parent"));
}

namespace {

// The same three levels and keep tables on a schema without one-column keys: orders keyed by
// (region_code, order_no), shipments by (region_code, order_no, shipment_no), contacts with a
// surrogate id; order_items (keep) links by both order columns.
const std::string k_composite = R"([database]
dsn = "host=db port=5432 dbname=orders"
sslrootcert = "/etc/ca.pem"
[pii]
hmac_key_file = "/etc/lethe/hmac.key"
[pii.root]
table = "sales.orders"
key = ["region_code", "order_no"]
shipped_at = "shipped_at"
columns = [{ name = "buyer_email", strategy = "hmac" }]
[[pii.children]]
table = "sales.shipments"
parent = "sales.orders"
link = ["region_code", "order_no"]
key = ["region_code", "order_no", "shipment_no"]
columns = [{ name = "recipient", strategy = "hmac" }, { name = "city", strategy = "null" }]
[[pii.children]]
table = "sales.shipment_contacts"
parent = "sales.shipments"
link = ["ship_region", "ship_order", "ship_no"]
columns = [{ name = "phone", strategy = "null" }]
[[pii.children]]
table = "sales.order_items"
parent = "sales.orders"
link = ["region_code", "order_no"]
strategy = "keep"
)";

db::CatalogFacts composite_facts() {
  db::CatalogFacts f;
  f.tables.push_back({"sales.orders",
                      {{"region_code", "text"},
                       {"order_no", "bigint"},
                       {"buyer_email", "text"},
                       {"shipped_at", "timestamptz"}},
                      settings::Columns{"region_code", "order_no"}});
  f.tables.push_back({"sales.shipments",
                      {{"region_code", "text"},
                       {"order_no", "bigint"},
                       {"shipment_no", "integer"},
                       {"recipient", "text"},
                       {"city", "text"}},
                      settings::Columns{"region_code", "order_no", "shipment_no"}});
  f.tables.push_back({"sales.shipment_contacts",
                      {{"contact_id", "integer"},
                       {"ship_region", "text"},
                       {"ship_order", "bigint"},
                       {"ship_no", "integer"},
                       {"phone", "text"}},
                      settings::Columns{"contact_id"}});
  return f;
}

const std::string k_batch_keys = "(SELECT (u.k ->> 0)::text, (u.k ->> 1)::bigint FROM "
                                 "unnest($1::jsonb[]) AS u(k))";

} // namespace

TEST_CASE("map: composite key, link and parent_column are lists, the parent key the "
          "default parent_column") {
  settings::Settings s = settings::load_from_string(k_composite, "t.toml");
  CHECK(s.root.table.key == settings::Columns{"region_code", "order_no"});
  CHECK(s.children[0].parent_column == settings::Columns{"region_code", "order_no"});
  CHECK(s.children[1].parent_column == settings::Columns{"region_code", "order_no", "shipment_no"});
  CHECK(s.keep_tables.at(0).link == settings::Columns{"region_code", "order_no"});
}

TEST_CASE("map: a link whose width differs from its parent's key, or a column listed twice, is "
          "refused at its table") {
  std::string narrow = k_composite;
  narrow.replace(narrow.find("link = [\"ship_region\", \"ship_order\", \"ship_no\"]"),
                 std::string("link = [\"ship_region\", \"ship_order\", \"ship_no\"]").size(),
                 "link = [\"ship_region\", \"ship_order\"]");
  CHECK_THROWS_WITH(settings::load_from_string(narrow, "t.toml"),
                    Catch::Contains("t.toml:17:1: link of sales.shipment_contacts names 2 "
                                    "column(s) but the parent's key (parent_column) 3"));
  std::string twice = k_composite;
  twice.replace(twice.find("key = [\"region_code\", \"order_no\"]"),
                std::string("key = [\"region_code\", \"order_no\"]").size(),
                "key = [\"order_no\", \"order_no\"]");
  CHECK_THROWS_WITH(settings::load_from_string(twice, "t.toml"),
                    Catch::Contains("key column lists 'order_no' twice"));
  std::string empty = k_composite;
  empty.replace(empty.find("key = [\"region_code\", \"order_no\"]"),
                std::string("key = [\"region_code\", \"order_no\"]").size(), "key = []");
  CHECK_THROWS_WITH(settings::load_from_string(empty, "t.toml"),
                    Catch::Contains("'pii.root.key' must be a column name or a non-empty array"));
}

TEST_CASE("map: a one-column key written as a list is the same map, with the same digest") {
  std::string listed = k_map;
  listed.replace(listed.find("key = \"order_no\""), std::string("key = \"order_no\"").size(),
                 "key = [\"order_no\"]");
  CHECK(settings::pii_map_digest(settings::load_from_string(listed, "t.toml")) ==
        settings::pii_map_digest(settings::load_from_string(k_map, "t.toml")));
  CHECK(settings::pii_map_digest(settings::load_from_string(k_composite, "t.toml")) !=
        settings::pii_map_digest(settings::load_from_string(k_map, "t.toml")));
}

TEST_CASE("plan: a composite root key walks, guards and matches by all its columns") {
  settings::Settings s = settings::load_from_string(k_composite, "t.toml");
  sanitize::Plan p = sanitize::build_plan(s, composite_facts(), sanitize::Selection::due());
  CHECK(p.key_type == "jsonb");
  REQUIRE(p.lanes.size() == 1);
  // Keys leave the walk as their canonical text; the keyset orders by the typed columns.
  const std::string key_text =
      "json_build_array(r.\"region_code\"::text, r.\"order_no\"::text)::text";
  CHECK(p.lanes[0].first.rfind("SELECT r.\"shipped_at\"::text, " + key_text + " FROM ", 0) == 0);
  CHECK(has(p.lanes[0].first, "hashtext(" + key_text + ")"));
  CHECK(has(p.lanes[0].first, "ORDER BY r.\"shipped_at\", r.\"region_code\", r.\"order_no\""));
  CHECK(has(p.lanes[0].next,
            "(r.\"shipped_at\", r.\"region_code\", r.\"order_no\") > "
            "($5::timestamptz, ($6::jsonb ->> 0)::text, ($6::jsonb ->> 1)::bigint)"));
  CHECK(p.guard.rfind("SELECT " + key_text, 0) == 0);
  CHECK(has(p.guard, "(r.\"region_code\", r.\"order_no\") IN " + k_batch_keys));
  // A child with PII below makes its order a candidate, joined by both columns.
  CHECK(has(p.count_candidates, "c1.\"region_code\" = r.\"region_code\" AND c1.\"order_no\" = "
                                "r.\"order_no\""));
  REQUIRE(p.steps.size() == 3);
  // The grandchild reaches its order through its parent's three key columns.
  CHECK(has(p.steps[0].sanitize,
            "(x.\"ship_region\", x.\"ship_order\", x.\"ship_no\") IN (SELECT xp.\"region_code\", "
            "xp.\"order_no\", xp.\"shipment_no\" FROM \"sales\".\"shipments\" xp WHERE "
            "(xp.\"region_code\", xp.\"order_no\") IN " +
                k_batch_keys + ")"));
  CHECK(has(p.steps[0].sanitize, "v.lethe_row_id = x.\"contact_id\""));
  // A composite row identity matches the state view by each column and counts canonical texts.
  CHECK(has(p.steps[1].sanitize,
            "d.\"region_code\" = x.\"region_code\" AND d.\"order_no\" = x.\"order_no\" AND "
            "d.\"shipment_no\" = x.\"shipment_no\" AND d.has_pii"));
  CHECK(has(p.steps[1].sanitize, "RETURNING json_build_array(x.\"region_code\"::text, "
                                 "x.\"order_no\"::text, x.\"shipment_no\"::text)::text"));
  // hmac values are read through the due-values view, which shows only due orders' rows,
  // matched to the row by every identity column.
  CHECK(has(p.steps[1].sanitize, "lethe.\"pii_due_sales_shipments\" d, pg_temp.lethe_hmac_key k"));
  CHECK(has(p.steps[2].sanitize, "WHERE d.\"region_code\" = x.\"region_code\" AND d.\"order_no\" = "
                                 "x.\"order_no\" AND d.has_pii"));
}

TEST_CASE("plan: erasing orders of a composite key takes them by canonical text, keep table "
          "first") {
  settings::Settings s = settings::load_from_string(k_composite, "t.toml");
  sanitize::Plan p = sanitize::build_plan(
      s, composite_facts(), sanitize::Selection::orders({"[\"EU\", 17]"}), sanitize::Action::erase);
  CHECK(has(p.lanes[0].first,
            "json_build_array(r.\"region_code\"::text, r.\"order_no\"::text)::text = ANY("));
  REQUIRE(p.steps.size() == 4);
  CHECK(p.steps[0].table->table == "sales.order_items");
  CHECK(p.steps[0].sanitize == "DELETE FROM \"sales\".\"order_items\" x WHERE (x.\"region_code\", "
                               "x.\"order_no\") IN " +
                                   k_batch_keys);
  CHECK(p.steps[3].sanitize.rfind("DELETE FROM \"sales\".\"orders\" x WHERE", 0) == 0);
}

TEST_CASE("plan: a json column is rewritten from the due-values view, each path only where the "
          "document as read holds something to change") {
  std::string map = k_map;
  map.replace(
      map.find(
          R"(columns = [{ name = "recipient", strategy = "constant", value = "[redacted]" }])"),
      std::string(
          R"(columns = [{ name = "recipient", strategy = "constant", value = "[redacted]" }])")
          .size(),
      R"(columns = [{ name = "doc", strategy = "json", remove = ["ShippingAddress", "BuyerInfo.BuyerName"] }])");
  settings::Settings s = settings::load_from_string(map, "t.toml");
  db::CatalogFacts f = facts();
  f.tables[1].columns[2] = {"doc", "json"};
  sanitize::Plan p = sanitize::build_plan(s, f, sanitize::Selection::due());
  const std::string& sql = p.steps[1].sanitize;
  // Read through the due-values view (the purge role may not read the column), no key needed.
  CHECK_FALSE(p.steps[1].hmac);
  CHECK(has(sql,
            "FROM lethe.\"pii_due_sales_shipments\" d WHERE d.lethe_row_id = x.\"shipment_id\""));
  CHECK(has(sql, " #- CASE WHEN coalesce((d.lethe_json_0 #> ARRAY['BuyerInfo', "
                 "'BuyerName']::text[]) <> 'null'::jsonb, false) THEN ARRAY['BuyerInfo', "
                 "'BuyerName']::text[] ELSE '{}'::text[] END)"));
  CHECK(has(sql, "((d.lethe_json_0 #- CASE WHEN "));
  // The document appears once per path in the expression (not twice per path), and twice in
  // the guard that leaves a scalar document as it is.
  size_t refs = 0;
  for (size_t at = sql.find("d.lethe_json_0"); at != std::string::npos;
       at = sql.find("d.lethe_json_0", at + 1)) {
    ++refs;
  }
  CHECK(refs == 5);
  CHECK(has(sql, "CASE WHEN jsonb_typeof(d.lethe_json_0) IN ('object', 'array') THEN "));
  // Written back in the column's own type.
  CHECK(has(sql, ")::json FROM "));
  CHECK_FALSE(has(sql, "x.\"doc\" #"));

  // hmac paths: a pseudonym as a JSON string, from the session's key pads.
  std::string hm = map;
  hm.replace(hm.find(R"(remove = ["ShippingAddress", "BuyerInfo.BuyerName"])"),
             std::string(R"(remove = ["ShippingAddress", "BuyerInfo.BuyerName"])").size(),
             R"(hmac = ["BuyerInfo.BuyerEmail"])");
  settings::Settings s2 = settings::load_from_string(hm, "t.toml");
  sanitize::Plan p2 = sanitize::build_plan(s2, f, sanitize::Selection::due());
  CHECK(p2.steps[1].hmac);
  CHECK(has(p2.steps[1].sanitize, "d, pg_temp.lethe_hmac_key k WHERE"));
  CHECK(has(p2.steps[1].sanitize,
            "THEN to_jsonb('hmac:' || encode(sha256(k.opad || sha256(k.ipad || "
            "convert_to((d.lethe_json_0 #>> ARRAY['BuyerInfo', 'BuyerEmail']::text[]), "
            "'UTF8'))), 'hex')) ELSE 'null'::jsonb END, false)"));
  CHECK(p2.steps[1].sanitize.find("jsonb_set(d.lethe_json_0, CASE WHEN ") != std::string::npos);
}
