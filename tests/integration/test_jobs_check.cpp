// C1 monitoring: `lethe check` counts PII past its deadline, from the data, at the boundaries.
#include "support/cluster.hpp"
#include "worker/db/clock.hpp"
#include "worker/runtime/context.hpp"
#include "worker/sanitize/overdue.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

void add_order(db::Session& s, const std::string& id, const std::string& status,
               const std::string& shipped_age, const std::string& update_age, bool business,
               bool with_pii) {
  test::insert_order(s, k_as_of, {id, status, shipped_age, update_age, business, with_pii});
}

// The overdue counts as `lethe check` reads them, as of `as_of` resolved by the database.
sanitize::Overdue overdue_pii(Context& ctx, const std::string& as_of) {
  db::Session& s = ctx.ready_db();
  return sanitize::overdue_pii(s, ctx.settings(), db::resolve_instant(s, as_of).iso);
}

} // namespace

TEST_CASE("check: exactly the rows past their deadline, held rows apart, exit 1 then 0") {
  test::TestDb t("check_boundary", 0);
  t.migrate_and_grant();
  t.approve(); // `lethe check` wants an approved schema
  auto s = t.admin();
  add_order(*s, "A-29d23h", "Shipped", "29 days 23 hours", "29 days 23 hours", false, true);
  add_order(*s, "B-30d1h", "Shipped", "30 days 1 hour", "30 days 1 hour", false, true);
  add_order(*s, "C-30d", "Shipped", "30 days", "30 days", false, true);
  add_order(*s, "D-cancel-31d", "Canceled", "", "31 days", false, true);
  add_order(*s, "E-pending-31d", "Pending", "", "31 days", false, true);
  add_order(*s, "F-held-40d", "Shipped", "40 days", "40 days", true, true);
  add_order(*s, "G-clean-40d", "Shipped", "40 days", "40 days", false, false);

  Context ctx(t.settings(), util::Identity{"t", "t", ""}, "check");
  sanitize::Overdue res = overdue_pii(ctx, k_as_of);
  REQUIRE(res.tables.size() == 4);
  CHECK(res.tables[0].table == "public.orders");
  CHECK(res.tables[0].overdue == 3); // B, C, D
  CHECK(res.tables[0].held == 1);    // F
  CHECK(res.tables[0].oldest_overdue_s == Approx(86400.0));
  CHECK(res.tables[1].overdue == 3);
  CHECK(res.tables[1].held == 1);
  CHECK(res.as_of == "2026-06-30T12:00:00.000000Z");

  test::RunResult r = t.lethe("check --as-of '" + k_as_of + "'");
  CHECK(r.exit == 1);
  CHECK(r.out.find("result: PII overdue") != std::string::npos);
  test::require_no_pii(r.out + r.err, t.pii_values());

  // An hour earlier, B is not due yet and C is an hour from due.
  CHECK(overdue_pii(ctx, "2026-06-30 10:59:59+00").tables[0].overdue == 1);

  // Sanitize what is due: the check passes.
  s->exec("UPDATE orders SET buyer_email = NULL, buyer_name = '[redacted]' "
          "WHERE amazon_order_id IN ('B-30d1h', 'C-30d', 'D-cancel-31d')");
  s->exec("UPDATE shipping_addresses SET name = NULL, address_line1 = NULL, phone = NULL "
          "WHERE amazon_order_id IN ('B-30d1h', 'C-30d', 'D-cancel-31d')");
  test::RunResult ok = t.lethe("check --json --as-of '" + k_as_of + "'");
  CHECK(ok.exit == 0);
  CHECK(ok.out.find("\"overdue\":0") != std::string::npos);
  CHECK(ok.out.find("\"held_awaiting_archive\":4") != std::string::npos);

  // Re-synced PII on a purged order is overdue again: decided from the data, not a watermark.
  s->exec("UPDATE orders SET buyer_name = 'Name again' WHERE amazon_order_id = 'C-30d'");
  CHECK(t.lethe("check --as-of '" + k_as_of + "'").exit == 1);
}

TEST_CASE("check: a bad --as-of is a usage error") {
  test::TestDb t("check_asof", 0);
  t.migrate_and_grant();
  test::RunResult r = t.lethe("check --as-of yesterday-ish");
  CHECK(r.exit == 64);
  CHECK(r.err.find("HINT:") != std::string::npos);
}
