// The sanitize engine driven directly (deletion requests, issue #11, will be its command): the
// erase action on a real TLS server, and config check's view of unmapped referencing tables.
#include "support/cluster.hpp"
#include "worker/db/clock.hpp"
#include "worker/runtime/context.hpp"
#include "worker/sanitize/engine.hpp"

#include <catch2/catch.hpp>
#include <map>

using namespace lethe;

namespace {

const char* const k_tables[] = {"orders", "shipping_addresses", "buyer_tax_info",
                                "buyer_tax_classifications", "order_items"};

// Rows of each sample table that belong to orders `ids` (text[] literal), or to all others.
std::map<std::string, long long> rows_of(db::Session& s, const std::string& ids, bool of_them) {
  std::map<std::string, long long> out;
  for (const char* t : k_tables) {
    std::string owner = std::string(t) == "buyer_tax_classifications"
                            ? "(SELECT amazon_order_id FROM buyer_tax_info i WHERE i.tax_info_id "
                              "= x.tax_info_id)"
                            : "x.amazon_order_id";
    out[t] =
        s.exec(std::string("SELECT count(*) FROM ") + t + " x WHERE " + (of_them ? "" : "NOT ") +
                   "coalesce(" + owner + " = ANY($1::text[]), false)",
               {ids})
            .integer(0, 0);
  }
  return out;
}

} // namespace

TEST_CASE("sanitize engine: erase deletes every mapped row of exactly the named orders, keep "
          "tables included, due or not") {
  test::TestDb t("engine_erase", 200, "2026-06-30");
  t.migrate_and_grant();
  auto s = t.admin();
  // One order long past its clock, one that is not due at all, both with items and addresses.
  db::Rows pick = s->exec(
      "(SELECT amazon_order_id FROM orders o WHERE shipped_at < '2026-04-01' AND EXISTS (SELECT 1 "
      "FROM order_items i WHERE i.amazon_order_id = o.amazon_order_id) AND EXISTS (SELECT 1 FROM "
      "buyer_tax_info b WHERE b.amazon_order_id = o.amazon_order_id) ORDER BY 1 LIMIT 1) UNION "
      "ALL (SELECT amazon_order_id FROM orders o WHERE shipped_at > '2026-06-25' AND EXISTS "
      "(SELECT 1 FROM order_items i WHERE i.amazon_order_id = o.amazon_order_id) ORDER BY 1 "
      "LIMIT 1)");
  REQUIRE(pick.size() == 2);
  std::vector<db::Value> ids{pick.at(0, 0), pick.at(1, 0)};
  std::string ids_literal = db::array_literal(ids);
  std::map<std::string, long long> theirs = rows_of(*s, ids_literal, true);
  std::map<std::string, long long> others = rows_of(*s, ids_literal, false);
  REQUIRE(theirs["order_items"] > 0);
  REQUIRE(theirs["buyer_tax_classifications"] > 0);

  Context ctx(t.settings(), util::Identity{"test", "test", ""}, "test erase");
  sanitize::Job job{ctx, {50, 2}, db::resolve_instant(ctx.ready_db(), ""), {}, {}, 0, {}};
  sanitize::plan(job, sanitize::Selection::orders({*ids[0], *ids[1]}), sanitize::Action::erase);
  sanitize::count(job);
  CHECK(job.stats.candidates == 2);
  sanitize::run_batches(job);
  CHECK(job.stats.orders_done == 2);
  CHECK(job.stats.exit_reason == "done");

  // Nothing of theirs is left; nothing of anyone else's was touched; counted exactly.
  for (const auto& [table, n] : rows_of(*s, ids_literal, true)) {
    INFO(table);
    CHECK(n == 0);
    CHECK(job.stats.find("public." + table)->sanitized == theirs[table]);
  }
  CHECK(rows_of(*s, ids_literal, false) == others);
}

TEST_CASE("config check: a table that references a mapped table but is not in the map is "
          "named with what to do") {
  test::TestDb t("engine_unmapped_reference", 5);
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  test::RunResult clean = t.lethe("config check");
  INFO(clean.out + clean.err);
  REQUIRE(clean.exit == 0);
  CHECK((clean.out + clean.err).find("not in the PII map") == std::string::npos);

  s->exec("CREATE TABLE refunds (refund_id serial PRIMARY KEY, amazon_order_id text REFERENCES "
          "orders, amount numeric)");
  test::RunResult warned = t.lethe("config check");
  INFO(warned.out + warned.err);
  CHECK(warned.exit == 0);
  CHECK((warned.out + warned.err)
            .find("refunds references the mapped table orders by foreign key but is not in the "
                  "PII map") != std::string::npos);
  CHECK((warned.out + warned.err).find("for Amazon Information that is not PII") !=
        std::string::npos);
}

TEST_CASE("config check: the request identifier columns must exist and hold text") {
  test::TestDb t("engine_request_columns", 0);
  t.make_archive_keys();
  t.migrate_and_grant();
  REQUIRE(t.lethe("config check").exit ==
          0); // the example names seller_id, marketplace_id, buyer_email
  std::string text = test::set_key(t.config_text(), "buyer", "\"purchase_date\"");
  test::RunResult r = t.lethe("config check", t.write_config("bad-buyer.toml", text));
  INFO(r.out + r.err);
  CHECK(r.exit == 78);
  CHECK((r.out + r.err)
            .find("buyer column 'purchase_date' is timestamp with time zone; SP-API "
                  "identifiers are text") != std::string::npos);
  text = test::set_key(t.config_text(), "seller", "\"seller\"");
  r = t.lethe("config check", t.write_config("no-seller.toml", text));
  CHECK(r.exit == 78);
  CHECK((r.out + r.err).find("seller column 'seller' does not exist") != std::string::npos);
}
