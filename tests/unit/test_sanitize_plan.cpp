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
  CHECK(has(p.steps[0].sanitize, "\"shipment_id\" IN (SELECT"));
  CHECK(has(p.steps[0].sanitize, "= ANY($1::bigint[])"));
  CHECK(has(p.steps[0].sanitize, "\"phone\" = NULL"));
  CHECK(has(p.steps[0].sanitize, "RETURNING x.\"contact_id\"::text"));
  CHECK_FALSE(p.steps[0].deletes);
  // A constant keeps a NULL NULL, through the state view's null flag.
  CHECK(has(p.steps[1].sanitize, "CASE WHEN v.lethe_null_0 THEN NULL ELSE '[redacted]' END"));
  // hmac: the root's ids are of the key's type.
  REQUIRE(p.steps[2].hmac_columns == std::vector<std::string>{"buyer_email"});
  CHECK(has(p.steps[2].hmac_update, "unnest($1::bigint[], $2::text[])"));
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
    CHECK(st.hmac_columns.empty());
    CHECK(st.sanitize.rfind("DELETE FROM ", 0) == 0);
  }
  CHECK(order == std::vector<std::string>{"sales.item_fees", "sales.order_items",
                                          "sales.shipment_contacts", "sales.shipments",
                                          "sales.orders"});
  // A keep grandchild reaches its order through the keep table above it.
  CHECK(has(p.steps[0].sanitize, "\"item_id\" IN (SELECT"));
  CHECK(has(p.steps[0].sanitize, "\"sales\".\"order_items\""));
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
