#include "worker/audit/runs.hpp"

#include "worker/settings/settings.hpp"

namespace lethe::audit {

long long begin_run(Context& ctx, const std::string& options_json) {
  db::Rows r = ctx.ready_db().exec(
      "INSERT INTO lethe.job_runs (job, actor, os_user, unit, lethe_version, pii_map_digest, "
      "options) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING run_id",
      {ctx.job(), ctx.who().actor, ctx.who().os_user, ctx.who().unit, std::string(LETHE_VERSION),
       settings::pii_map_digest(ctx.settings()), options_json});
  return r.integer(0, 0);
}

void finish_run(Context& ctx, long long run_id, Kind kind, const std::string& outcome,
                const std::string& exit_reason, const std::string& counts_json,
                const std::string& details_json) {
  std::string run_outcome =
      outcome == "done" || outcome == "refused" || outcome == "interrupted" ? outcome : "failed";
  try {
    ctx.ready_db().exec("UPDATE lethe.job_runs SET finished_at = now(), outcome = $2, "
                        "exit_reason = $3, counts = $4 WHERE run_id = $1",
                        {std::to_string(run_id), run_outcome, exit_reason, counts_json});
  } catch (const Error&) {
    // The audit record below still tells the outcome; it spools if the database is gone.
  }
  ctx.record(Record{kind, ctx.job(), outcome, exit_reason, run_id, counts_json, details_json});
}

} // namespace lethe::audit
