// Evidence for operators and auditors: the record of processing activities (`lethe inventory`,
// C16), generated from the PII map and the live catalog, and the auditor's report (`lethe
// report`), one self-contained HTML file (or JSON with the same data) mapping each policy clause
// C1-C19 to what lethe recorded in a period. Counts, clocks, names and hashes only: no PII.
#pragma once

#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::jobs::evidence {

struct InventoryOptions {
  std::string format = "md"; // md | json | html
  std::string out;           // empty: standard output
};

struct ReportOptions {
  std::string from;            // empty: 90 days before --to
  std::string to;              // empty: now
  std::string format = "html"; // html | json
  std::string out;             // empty: standard output
};

int run_inventory(Context& ctx, const InventoryOptions& opts);
int run_report(Context& ctx, const ReportOptions& opts);

} // namespace lethe::jobs::evidence
