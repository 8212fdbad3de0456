// The nightly PII purge (C1): sanitizes every order whose retention clock has run out, across
// the root and child tables of the PII map, in small committed batches.
#pragma once

#include "jobs/purge/report.hpp"
#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::jobs::purge {

struct PurgeOptions {
  std::string as_of; // empty: the database's now()
  bool dry_run = false;
  bool json = false;
  bool force = false;  // override the safety limits (recorded in the audit)
  long batch_size = 0; // 0: purge.batch_size from the configuration
  int workers = 0;     // 0: purge.workers from the configuration
};

// Runs the purge; returns the exit code (0 done or nothing due, 75 interrupted).
int run_purge(Context& ctx, const PurgeOptions& opt);

// Takes the lock every job that sanitizes PII shares (purge, archive); a second one exits 75
// with an audited refusal naming `job`.
void lock_pii_writers(Context& ctx, const std::string& job);

// The archive job's last step: sanitizes, in batches, every due order an archive holds (this
// run's, and any an earlier run archived but did not get to sanitize), as of `as_of`, then
// vacuums. The caller holds the purge lock; each batch adds its counts to run `run_id`'s
// progress (0: none). Returns the run's figures.
RunStats sanitize_archived_orders(Context& ctx, const std::string& as_of, long long run_id);

} // namespace lethe::jobs::purge
