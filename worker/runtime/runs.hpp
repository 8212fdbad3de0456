// lethe.job_runs bookkeeping: a row when a job starts (so a crash leaves a visible "running"
// row) and its outcome when it ends, in the transaction of the audit record that says so.
// Every session of a run holds a shared advisory lock on its run id until it ends, so a run
// whose lock is free is known to be dead; the next run closes it as "abandoned" with the counts
// its committed work left in lethe.run_progress.
#pragma once

#include "worker/runtime/context.hpp"

#include <string>
#include <utility>
#include <vector>

namespace lethe::runtime {

// Closes every abandoned run (see above) with an audit record; inserts a running row for
// `ctx.job()` with `options_json`, locked for this session; returns its run id.
long long begin_run(Context& ctx, const std::string& options_json);

// Makes `session` (another connection of run `run_id`) hold the run's lock too, so the run
// counts as alive while any of its sessions works.
void join_run(db::Session& session, long long run_id);

// Adds `items` (name, amount) to run `run_id`'s progress, inside `tx`, the transaction of the
// work they count; `worker` keeps concurrent connections of one run off each other's rows.
void add_progress(db::Transaction& tx, long long run_id, int worker,
                  const std::vector<std::pair<std::string, long long>>& items);

// Closes runs left "running" by a process that died (no session holds their lock); returns how
// many. Each gets outcome "abandoned" and an audit record with the counts of its progress.
size_t close_abandoned_runs(Context& ctx);

// Records the run's end in job_runs and writes its audit record (kind run, or refusal/alarm),
// in one transaction.
void finish_run(Context& ctx, long long run_id, audit::Kind kind, const std::string& outcome,
                const std::string& exit_reason, const std::string& counts_json,
                const std::string& details_json = "{}");

} // namespace lethe::runtime
