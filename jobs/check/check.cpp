#include "jobs/check/check.hpp"

#include "worker/db/pii_sql.hpp"
#include "worker/log/log.hpp"
#include "worker/util/json.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::jobs::check {
namespace {

using settings::PiiTable;

// FROM clause joining `t`'s state view up to the root's (aliased r).
std::string path_to_root(const settings::Settings& s, const PiiTable& t) {
  if (&t == &s.root.table) {
    return db::state_view(t.table) + " r";
  }
  std::string from = db::state_view(t.table) + " c0";
  const PiiTable* cur = &t;
  int depth = 0;
  while (cur != &s.root.table) {
    const PiiTable* parent = s.find_table(cur->parent);
    std::string alias = parent == &s.root.table ? "r" : "c" + std::to_string(depth + 1);
    from += " JOIN " + db::state_view(parent->table) + " " + alias + " ON c" +
            std::to_string(depth) + "." + db::quote_ident(cur->link) + " = " + alias + "." +
            db::quote_ident(cur->parent_column);
    cur = parent;
    ++depth;
  }
  return from;
}

std::string resolve_as_of(db::Session& session, const std::string& as_of) {
  try {
    return session
        .exec("SELECT to_char(coalesce($1::timestamptz, now()) AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
              {as_of.empty() ? db::Value{} : db::Value{as_of}})
        .text(0, 0);
  } catch (const db::DbError& e) {
    if (e.sqlstate().starts_with("22")) {
      throw Error(Exit::usage, "--as-of is not a timestamp PostgreSQL understands",
                  "write it as 2026-01-31 or '2026-01-31 12:00:00+00'");
    }
    throw;
  }
}

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
  out.as_of = resolve_as_of(session, as_of);
  for (const PiiTable* t : s.pii_tables()) {
    std::string owner = t == &s.root.table ? "r" : "c0";
    std::string sql = "SELECT count(*) FILTER (WHERE NOT r.held), count(*) FILTER (WHERE r.held), "
                      "extract(epoch FROM $1::timestamptz - min(r.due_at) FILTER (WHERE NOT "
                      "r.held)) FROM " +
                      path_to_root(s, *t) + " WHERE " + owner +
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
                     .add("retention_days", ctx.settings().retention_days)
                     .add("overdue", overdue)
                     .add("held_awaiting_archive", held)
                     .add("ok", overdue == 0)
                     .add_raw("tables", tables)
                     .str()
              << "\n";
  } else {
    std::printf("PII past its deadline as of %s (retention %ld days after shipment)\n",
                res.as_of.c_str(), ctx.settings().retention_days);
    std::printf("  %-36s %10s %10s %12s\n", "table", "overdue", "held", "oldest");
    for (const TableStatus& t : res.tables) {
      std::printf("  %-36s %10lld %10lld %12s\n", t.table.c_str(), t.overdue, t.held,
                  format_age(t.oldest_overdue_s).c_str());
    }
    std::printf("%s\n", overdue == 0 ? "result: nothing overdue" : "result: PII overdue (C1)");
  }
  log::event(overdue == 0 ? log::Level::info : log::Level::warning, "check.done",
             {{"overdue", overdue}, {"held", held}, {"as_of", res.as_of}});
  return overdue == 0 ? 0 : 1;
}

} // namespace lethe::jobs::check
