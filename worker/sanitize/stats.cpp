#include "worker/sanitize/stats.hpp"

#include "worker/log/log.hpp"

#include <algorithm>
#include <cstdio>
#include <unistd.h>

namespace lethe::sanitize {

void BatchCounters::add(const BatchCounters& other) {
  orders_done += other.orders_done;
  orders_picked += other.orders_picked;
  batches += other.batches;
  lock_retries += other.lock_retries;
  skipped_locked += other.skipped_locked;
  plan_checks += other.plan_checks;
  plan_violations += other.plan_violations;
  tx_seconds.insert(tx_seconds.end(), other.tx_seconds.begin(), other.tx_seconds.end());
}

TableStats* Stats::find(const std::string& table) {
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

long long Stats::total_sanitized() const {
  long long n = 0;
  for (const TableStats& t : tables) {
    n += t.sanitized;
  }
  return n;
}

double Stats::p99_tx_seconds() const {
  if (tx_seconds.empty()) {
    return 0;
  }
  std::vector<double> v = tx_seconds;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(0.99 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

nlohmann::ordered_json Stats::counts() const {
  nlohmann::ordered_json sanitized = nlohmann::ordered_json::object();
  nlohmann::ordered_json held = nlohmann::ordered_json::object();
  for (const TableStats& t : tables) {
    sanitized[t.table] = t.sanitized;
    held[t.table] = t.held;
  }
  return {{"orders_due", candidates},
          {"orders_done", orders_done},
          {"orders_held_awaiting_archive", orders_held},
          {"orders_skipped_locked", skipped_locked},
          {"rows_sanitized", total_sanitized()}, // rows of every PII-map table together
          {"rows_sanitized_by_table", sanitized},
          {"rows_held_awaiting_archive_by_table", held},
          {"batches", batches},
          {"lock_retries", lock_retries},
          {"plan_violations", plan_violations},
          {"schema_drift_alarms", drift_alarms}};
}

void to_json(nlohmann::ordered_json& j, const TableStats& t) {
  j = {{"table", t.table},     {"rows_sanitized", t.sanitized},
       {"batches", t.batches}, {"held_awaiting_archive", t.held},
       {"vacuum", t.vacuum},   {"dead_tuples", t.dead_tuples}};
}

void to_json(nlohmann::ordered_json& j, const Stats& st) {
  double rate = st.seconds > 0 ? static_cast<double>(st.total_sanitized()) / st.seconds : 0;
  j = {{"as_of", st.as_of},
       {"exit_reason", st.exit_reason},
       {"orders_due", st.candidates},
       {"orders_done", st.orders_done},
       {"rows_sanitized", st.total_sanitized()},
       {"batches", st.batches},
       {"seconds", st.seconds},
       {"rows_per_second", rate},
       {"p99_transaction_seconds", st.p99_tx_seconds()},
       {"lock_retries", st.lock_retries},
       {"skipped_locked", st.skipped_locked},
       {"schema_drift_alarms", st.drift_alarms},
       {"tables", st.tables}};
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

} // namespace lethe::sanitize
