#include "jobs/check/check.hpp"

#include "worker/db/clock.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/log/log.hpp"
#include "worker/util/json.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::jobs::check {
namespace {

using settings::PiiTable;

std::string format_age(double seconds) {
  if (seconds < 0) {
    return "-";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fd", seconds / 86400.0);
  return buf;
}

} // namespace

long long CheckResult::overdue_total() const {
  long long n = 0;
  for (const TableStatus& t : tables) {
    n += t.overdue;
  }
  return n;
}

CheckResult overdue_pii(Context& ctx, const std::string& as_of) {
  db::Session& session = ctx.ready_db();
  const settings::Settings& s = ctx.settings();
  CheckResult out;
  out.as_of = db::resolve_instant(session, as_of).iso;
  for (const PiiTable* t : s.pii_tables()) {
    std::string owner = t == &s.root.table ? "r" : "c0";
    std::string sql = "SELECT count(*) FILTER (WHERE NOT r.held), count(*) FILTER (WHERE r.held), "
                      "extract(epoch FROM $1::timestamptz - min(r.due_at) FILTER (WHERE NOT "
                      "r.held)) FROM " +
                      db::state_path_to_root(s, *t) + " WHERE " + owner +
                      ".has_pii AND r.due_at <= $1::timestamptz";
    db::Rows r = session.exec(sql, {out.as_of});
    TableStatus st;
    st.table = t->table;
    st.overdue = r.integer(0, 0);
    st.held = r.integer(0, 1);
    st.oldest_overdue_s = r.at(0, 2) ? std::stod(*r.at(0, 2)) : -1.0;
    out.tables.push_back(st);
  }
  return out;
}

int run_check(Context& ctx, const CheckOptions& opts) {
  CheckResult res = overdue_pii(ctx, opts.as_of);
  long long overdue = res.overdue_total();
  long long held = 0;
  for (const TableStatus& t : res.tables) {
    held += t.held;
  }
  if (opts.json) {
    std::string tables = "[";
    for (const TableStatus& t : res.tables) {
      tables +=
          (tables.size() > 1 ? "," : "") + util::JsonObject()
                                               .add("table", t.table)
                                               .add("overdue", t.overdue)
                                               .add("held_awaiting_archive", t.held)
                                               .add("oldest_overdue_seconds", t.oldest_overdue_s)
                                               .str();
    }
    tables += "]";
    std::cout << util::JsonObject()
                     .add("as_of", res.as_of)
                     .add("retention_days", ctx.settings().retention.days)
                     .add("overdue", overdue)
                     .add("held_awaiting_archive", held)
                     .add("ok", overdue == 0)
                     .add_raw("tables", tables)
                     .str()
              << "\n";
  } else {
    std::printf("PII past its deadline as of %s (retention %ld days after shipment)\n",
                res.as_of.c_str(), ctx.settings().retention.days);
    std::printf("  %-36s %10s %10s %12s\n", "table", "overdue", "held", "oldest");
    for (const TableStatus& t : res.tables) {
      std::printf("  %-36s %10lld %10lld %12s\n", t.table.c_str(), t.overdue, t.held,
                  format_age(t.oldest_overdue_s).c_str());
    }
    std::printf("%s\n", overdue == 0 ? "result: nothing overdue"
                                     : "result: PII overdue (C1) - run `lethe purge`");
  }
  log::event(overdue == 0 ? log::Level::info : log::Level::warning, "check.done",
             {{"overdue", overdue}, {"held", held}, {"as_of", res.as_of}});
  return overdue == 0 ? 0 : 1;
}

} // namespace lethe::jobs::check
