#pragma once

#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::jobs::check {

struct CheckOptions {
  std::string as_of; // empty: the database's now()
  bool json = false;
};

struct TableStatus {
  std::string table;
  long long overdue = 0;          // rows holding PII past their deadline, not held
  long long held = 0;             // overdue rows under regulatory hold, awaiting archive
  double oldest_overdue_s = -1.0; // seconds past the deadline of the oldest overdue row
};

struct CheckResult {
  std::string as_of;
  std::vector<TableStatus> tables;
  long long overdue_total() const;
};

// Counts overdue PII per PII-map table through lethe's state views (no PII is read).
CheckResult overdue_pii(Context& ctx, const std::string& as_of);

// `lethe check`: prints the counts; returns 0 when nothing is overdue, 1 otherwise.
int run_check(Context& ctx, const CheckOptions& opts);

} // namespace lethe::jobs::check
