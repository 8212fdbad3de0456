#include "jobs/purge/report.hpp"

#include "worker/log/log.hpp"
#include "worker/util/json.hpp"

#include <algorithm>
#include <cstdio>
#include <unistd.h>

namespace lethe::jobs::purge {
namespace {

std::string columns_of(const settings::PiiTable& t) {
  if (t.strategy == settings::TableStrategy::delete_row) {
    return "delete row";
  }
  std::string out;
  for (const settings::PiiColumn& c : t.columns) {
    const char* how = c.strategy == settings::Strategy::set_null   ? "null"
                      : c.strategy == settings::Strategy::constant ? "constant"
                                                                   : "hmac";
    out += (out.empty() ? "" : ", ") + c.name + " (" + how + ")";
  }
  return out;
}

} // namespace

void BatchCounters::add(const BatchCounters& other) {
  orders_done += other.orders_done;
  batches += other.batches;
  lock_retries += other.lock_retries;
  skipped_locked += other.skipped_locked;
  plan_checks += other.plan_checks;
  plan_violations += other.plan_violations;
  tx_seconds.insert(tx_seconds.end(), other.tx_seconds.begin(), other.tx_seconds.end());
}

TableStats* RunStats::find(const std::string& table) {
  for (TableStats& t : tables) {
    if (t.table == table) {
      return &t;
    }
  }
  TableStats t;
  t.table = table;
  tables.push_back(t);
  return &tables.back();
}

long long RunStats::total_sanitized() const {
  long long n = 0;
  for (const TableStats& t : tables) {
    n += t.sanitized;
  }
  return n;
}

double RunStats::p99_tx_seconds() const {
  if (tx_seconds.empty()) {
    return 0;
  }
  std::vector<double> v = tx_seconds;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(0.99 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

std::string RunStats::counts_json() const {
  util::JsonObject o;
  util::JsonObject sanitized;
  util::JsonObject held;
  for (const TableStats& t : tables) {
    sanitized.add(t.table, t.sanitized);
    held.add(t.table, t.held);
  }
  o.add("orders_due", candidates)
      .add("orders_done", orders_done)
      .add("orders_held_awaiting_archive", orders_held)
      .add("orders_skipped_locked", skipped_locked)
      .add("rows_sanitized", total_sanitized()) // rows of every PII-map table together
      .add_raw("rows_sanitized_by_table", sanitized.str())
      .add_raw("rows_held_awaiting_archive_by_table", held.str())
      .add("batches", batches)
      .add("lock_retries", lock_retries)
      .add("plan_violations", plan_violations);
  return o.str();
}

void print_plan(const RunStats& st, const settings::Settings& s, bool json) {
  if (json) {
    std::string tables = "[";
    for (const settings::PiiTable* t : s.pii_tables()) {
      const TableStats* ts = nullptr;
      for (const TableStats& x : st.tables) {
        ts = x.table == t->table ? &x : ts;
      }
      tables +=
          (tables.size() > 1 ? "," : "") + util::JsonObject()
                                               .add("table", t->table)
                                               .add("rows", ts ? ts->due : 0)
                                               .add("held_awaiting_archive", ts ? ts->held : 0)
                                               .add("sanitize", columns_of(*t))
                                               .str();
    }
    std::printf("%s\n", util::JsonObject()
                            .add("dry_run", true)
                            .add("as_of", st.as_of)
                            .add("orders_due", st.candidates)
                            .add_raw("tables", tables + "]")
                            .str()
                            .c_str());
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

void print_stats(const RunStats& st, bool json) {
  double rate = st.seconds > 0 ? static_cast<double>(st.total_sanitized()) / st.seconds : 0;
  if (json) {
    std::string tables = "[";
    for (const TableStats& t : st.tables) {
      tables += (tables.size() > 1 ? "," : "") + util::JsonObject()
                                                     .add("table", t.table)
                                                     .add("rows_sanitized", t.sanitized)
                                                     .add("batches", t.batches)
                                                     .add("held_awaiting_archive", t.held)
                                                     .add("vacuum", t.vacuum)
                                                     .add("dead_tuples", t.dead_tuples)
                                                     .str();
    }
    std::printf("%s\n", util::JsonObject()
                            .add("as_of", st.as_of)
                            .add("exit_reason", st.exit_reason)
                            .add("orders_due", st.candidates)
                            .add("orders_done", st.orders_done)
                            .add("rows_sanitized", st.total_sanitized())
                            .add("batches", st.batches)
                            .add("seconds", st.seconds)
                            .add("rows_per_second", rate)
                            .add("p99_transaction_seconds", st.p99_tx_seconds())
                            .add("lock_retries", st.lock_retries)
                            .add("skipped_locked", st.skipped_locked)
                            .add_raw("tables", tables + "]")
                            .str()
                            .c_str());
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
  }
  log::event(log::Level::info, "purge.done",
             {{"exit_reason", st.exit_reason},
              {"orders", st.orders_done},
              {"rows", st.total_sanitized()},
              {"batches", st.batches},
              {"seconds", st.seconds},
              {"p99_tx_s", st.p99_tx_seconds()}});
}

Progress::Progress(long long total)
    : m_total(total), m_enabled(::isatty(STDERR_FILENO) == 1 && !log::stderr_is_journal()) {}

void Progress::update(long long done, double seconds) {
  if (!m_enabled || seconds <= 0) {
    return;
  }
  double rate = static_cast<double>(done) / seconds;
  double eta = rate > 0 ? static_cast<double>(m_total - done) / rate : 0;
  std::fprintf(
      stderr, "\rpurge: %lld/%lld orders (%.0f%%), %.0f orders/s, ETA %.0f s   ", done, m_total,
      m_total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(m_total) : 100.0, rate,
      eta > 0 ? eta : 0);
  m_shown = true;
}

void Progress::finish() {
  if (m_shown) {
    std::fprintf(stderr, "\n");
  }
}

} // namespace lethe::jobs::purge
