// State shared by the purge's steps (jobs/purge/purge.cpp) and its batch workers
// (jobs/purge/batches.cpp). Internal to jobs/purge.
#pragma once

#include "jobs/purge/plan.hpp"
#include "jobs/purge/purge.hpp"
#include "jobs/purge/report.hpp"
#include "worker/db/clock.hpp"
#include "worker/runtime/context.hpp"
#include "worker/util/secret.hpp"

#include <chrono>
#include <string>

namespace lethe::jobs::purge {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Run {
  Context& ctx;
  const PurgeOptions& opt;
  db::Instant as_of;
  Plan plan;
  RunStats stats;
  long long run_id = 0;
  util::Secret hmac_key; // wiped when the run ends
};

// Session settings for batch work: index-driven plans only.
void prepare_session(db::Session& s);

// Walks the due orders in batches over `opt.workers` connections (disjoint by key hash) and
// sanitizes them; fills run.stats. Stops early on SIGTERM (exit reason "interrupted").
void sanitize_batches(Run& run);

} // namespace lethe::jobs::purge
