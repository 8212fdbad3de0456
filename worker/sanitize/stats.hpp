// The sanitize engine's figures: what was due, what was done, per table and per run.
#pragma once

#include "worker/settings/settings.hpp"
#include "worker/util/json.hpp"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lethe::sanitize {

struct TableStats {
  std::string table;
  long long due = 0;       // rows holding PII past their deadline, not held
  long long held = 0;      // overdue rows under regulatory hold: skipped, awaiting archive
  long long sanitized = 0; // rows updated or deleted
  long long batches = 0;   // batches that touched this table
  std::string vacuum;      // done, skipped: …, or empty when untouched
  double vacuum_seconds = 0;
  long long dead_tuples = -1;
};

// What the batch loop counts; each worker keeps its own, added up at the end.
struct BatchCounters {
  long long orders_done = 0;
  long long orders_picked = 0; // by the lanes, each once (orders_done: those erased or sanitized)
  long long batches = 0;
  long long lock_retries = 0;
  long long skipped_locked = 0;
  long long plan_checks = 0;
  long long plan_violations = 0;
  std::vector<double> tx_seconds;

  void add(const BatchCounters& other);
};

struct Stats : BatchCounters {
  std::string as_of;
  long long candidates = 0; // root orders with PII somewhere, due and not held
  long long root_rows = 0;
  long long orders_held = 0; // root orders with PII due but held, awaiting the archive
  bool forced = false;
  int workers = 0;
  double seconds = 0;
  std::string exit_reason;
  // Schema drift items that could hold PII unmapped (worker/db/drift.hpp): the purge still
  // runs, since the mapped PII must still go, and says so in its record and output.
  long long drift_alarms = 0;
  std::vector<TableStats> tables;

  TableStats* find(const std::string& table);
  long long total_sanitized() const;
  double p99_tx_seconds() const;
  // Counts for the audit record and job_runs: numbers only, each key naming its unit (orders,
  // or rows of the table named in the nested object).
  nlohmann::ordered_json counts() const;
  std::string counts_json() const { return util::dump(counts()); }
};

// A run's figures for `--json` output: per table and in total (keys in a stable order).
void to_json(nlohmann::ordered_json& j, const TableStats& t);
void to_json(nlohmann::ordered_json& j, const Stats& st);

// A one-line progress display on a terminal (never in the journal or a pipe).
class Progress {
public:
  explicit Progress(long long total);
  void update(long long done, double seconds);
  void finish();

private:
  long long m_total;
  bool m_enabled;
  bool m_shown = false;
};

} // namespace lethe::sanitize
