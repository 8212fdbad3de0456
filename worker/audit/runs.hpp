// lethe.job_runs bookkeeping: a row when a job starts (so a crash leaves a visible "running"
// row) and its outcome when it ends; the audit record of the run names the run id.
#pragma once

#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::audit {

// Inserts a running row for `ctx.job()` with `options_json`; returns its run id.
long long begin_run(Context& ctx, const std::string& options_json);

// Records the run's end in job_runs and writes its audit record (kind run, or refusal/alarm).
void finish_run(Context& ctx, long long run_id, Kind kind, const std::string& outcome,
                const std::string& exit_reason, const std::string& counts_json,
                const std::string& details_json = "{}");

} // namespace lethe::audit
