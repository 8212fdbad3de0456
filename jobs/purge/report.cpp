#include "jobs/purge/report.hpp"

#include "worker/log/log.hpp"
#include "worker/util/json.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace lethe::jobs::purge {
using sanitize::TableStats;
namespace {

std::string columns_of(const settings::PiiTable& t) {
  if (t.strategy == settings::TableStrategy::delete_row) {
    return "delete row";
  }
  std::string out;
  for (const settings::PiiColumn& c : t.columns) {
    const char* how = c.strategy == settings::Strategy::set_null   ? "null"
                      : c.strategy == settings::Strategy::constant ? "constant"
                      : c.strategy == settings::Strategy::hmac     ? "hmac"
                                                                   : "json";
    out += (out.empty() ? "" : ", ") + c.name + " (" + how + ")";
  }
  return out;
}

} // namespace

void print_plan(const sanitize::Stats& st, const settings::Settings& s, bool json) {
  if (json) {
    nlohmann::ordered_json tables = nlohmann::ordered_json::array();
    for (const settings::PiiTable* t : s.pii_tables()) {
      const TableStats* ts = nullptr;
      for (const TableStats& x : st.tables) {
        ts = x.table == t->table ? &x : ts;
      }
      tables.push_back({{"table", t->table},
                        {"rows", ts ? ts->due : 0},
                        {"held_awaiting_archive", ts ? ts->held : 0},
                        {"sanitize", columns_of(*t)}});
    }
    nlohmann::ordered_json out = {
        {"dry_run", true}, {"as_of", st.as_of}, {"orders_due", st.candidates}, {"tables", tables}};
    std::printf("%s\n", util::dump(out).c_str());
    return;
  }
  std::printf("dry run as of %s: %lld orders due; nothing is changed\n", st.as_of.c_str(),
              st.candidates);
  std::printf("  %-34s %10s %10s  %s\n", "table", "rows", "held", "sanitize");
  for (const settings::PiiTable* t : s.pii_tables()) {
    long long due = 0;
    long long held = 0;
    for (const TableStats& x : st.tables) {
      if (x.table == t->table) {
        due = x.due;
        held = x.held;
      }
    }
    std::printf("  %-34s %10lld %10lld  %s\n", t->table.c_str(), due, held, columns_of(*t).c_str());
  }
}

void print_stats(const sanitize::Stats& st, const runtime::Timings& steps, bool json) {
  double rate = st.seconds > 0 ? static_cast<double>(st.total_sanitized()) / st.seconds : 0;
  if (json) {
    util::Json out(st);
    out["steps_seconds"] = steps.to_json();
    std::printf("%s\n", util::dump(out).c_str());
  } else {
    std::printf("purge as of %s: %s\n", st.as_of.c_str(), st.exit_reason.c_str());
    std::printf("  %-34s %10s %8s %10s  %s\n", "table", "sanitized", "batches", "held",
                "vacuum (dead tuples)");
    for (const TableStats& t : st.tables) {
      std::string vac = t.vacuum.empty() ? "-" : t.vacuum;
      if (t.dead_tuples >= 0) {
        vac += " (" + std::to_string(t.dead_tuples) + ")";
      }
      std::printf("  %-34s %10lld %8lld %10lld  %s\n", t.table.c_str(), t.sanitized, t.batches,
                  t.held, vac.c_str());
    }
    std::printf("  total: %lld rows of %lld orders in %lld batches, %.2f s (%.0f rows/s), p99 "
                "transaction %.3f s\n",
                st.total_sanitized(), st.orders_done, st.batches, st.seconds, rate,
                st.p99_tx_seconds());
    if (st.drift_alarms > 0) {
      std::printf("  schema drift: %lld items may hold PII the map does not reach; see `lethe "
                  "check`\n",
                  st.drift_alarms);
    }
  }
  log::event(log::Level::info, "purge.done",
             {{"exit_reason", st.exit_reason},
              {"orders", st.orders_done},
              {"rows", st.total_sanitized()},
              {"batches", st.batches},
              {"seconds", st.seconds},
              {"p99_tx_s", st.p99_tx_seconds()}});
}

} // namespace lethe::jobs::purge
