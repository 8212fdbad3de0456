// The nightly PII purge (C1): sanitizes every order whose retention clock has run out, across
// the root and child tables of the PII map, in small committed batches (the sanitize engine).
#pragma once

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

} // namespace lethe::jobs::purge
