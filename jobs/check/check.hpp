#pragma once

#include "worker/db/drift.hpp"
#include "worker/runtime/context.hpp"
#include "worker/util/json.hpp"

#include <string>
#include <vector>

namespace lethe::jobs::check {

struct CheckOptions {
  std::string as_of; // empty: the database's now()
  bool json = false;
};

// Schema drift items as `check --json` and `config approve` show them, and as text.
util::Json drift_json(const std::vector<db::DriftItem>& items);
void print_drift(const std::vector<db::DriftItem>& items);

// `lethe check`: prints the counts; returns 0 when nothing is overdue, 1 otherwise.
int run_check(Context& ctx, const CheckOptions& opts);

} // namespace lethe::jobs::check
