// The purge's runbook: named steps over the sanitize engine.
#include "jobs/purge/purge.hpp"

#include "jobs/purge/report.hpp"
#include "worker/db/drift.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/locks.hpp"
#include "worker/runtime/run_scope.hpp"
#include "worker/sanitize/engine.hpp"
#include "worker/util/json.hpp"
#include "worker/util/signals.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace lethe::jobs::purge {
namespace {

using sanitize::Job;

sanitize::Limits limits(const Context& ctx, const PurgeOptions& opt) {
  const settings::Settings& s = ctx.settings();
  return {opt.batch_size > 0 ? opt.batch_size : s.purge.batch_size,
          opt.workers > 0 ? opt.workers : static_cast<int>(s.purge.workers)};
}

void resolve_clock(Job& job, const PurgeOptions& opt) {
  job.as_of = db::resolve_instant(job.ctx.ready_db(), opt.as_of);
  if (job.as_of.future && !opt.dry_run) {
    throw Error(Exit::usage, "--as-of " + job.as_of.iso + " is in the future",
                "purging ahead of the clock is refused; add --dry-run to preview it");
  }
}

// Counts schema drift that could hold PII (`lethe check` lists it): the purge runs on, but its
// record and output carry the count.
void count_drift(Job& job) {
  db::Session& session = job.ctx.ready_db();
  std::vector<db::DriftItem> items = db::current_drift(session, job.ctx.settings());
  job.stats.drift_alarms = static_cast<long long>(db::alarm_count(items));
  if (job.stats.drift_alarms > 0) {
    log::event(log::Level::warning, "purge.schema_drift",
               {{"items", job.stats.drift_alarms},
                {"hint", "run `lethe check` to list them; the PII map may not reach new PII"}});
  }
}

void plan_batches(Job& job, runtime::Timings& steps) {
  {
    runtime::Timer t(steps, "drift");
    count_drift(job);
  }
  {
    runtime::Timer t(steps, "plan");
    sanitize::plan(job, sanitize::Selection::due(), sanitize::Action::sanitize);
  }
  runtime::Timer t(steps, "count");
  sanitize::count(job);
}

void check_safety_limits(Job& job, const PurgeOptions& opt) {
  const settings::Settings& s = job.ctx.settings();
  double fraction = job.stats.root_rows == 0 ? 0.0
                                             : static_cast<double>(job.stats.candidates) /
                                                   static_cast<double>(job.stats.root_rows);
  std::string limit;
  if (job.stats.candidates > s.purge.max_rows_per_run) {
    limit = "purge.max_rows_per_run = " + std::to_string(s.purge.max_rows_per_run);
  } else if (fraction > s.purge.max_fraction_of_table) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s.purge.max_fraction_of_table);
    limit = "purge.max_fraction_of_table = " + std::string(buf);
  }
  if (limit.empty()) {
    return;
  }
  nlohmann::ordered_json counts = {{"orders_due", job.stats.candidates},
                                   {"root_rows", job.stats.root_rows}};
  if (opt.force) {
    job.stats.forced = true;
    log::event(
        log::Level::warning, "purge.safety_limit_forced",
        {{"limit", limit}, {"orders_due", job.stats.candidates}, {"actor", job.ctx.who().actor}});
    return;
  }
  job.ctx.record(audit::Record{audit::Kind::alarm, "purge", "refused", "safety_limit", std::nullopt,
                               util::dump(counts), util::dump({{"limit", limit}})});
  throw Error(Exit::data,
              "the purge would sanitize " + std::to_string(job.stats.candidates) + " of " +
                  std::to_string(job.stats.root_rows) + " orders, above " + limit,
              "check why so much is due (clock column, retention.days); to proceed anyway run "
              "`lethe purge --force --operator NAME`, which the audit trail records");
}

void record_run(Job& job, runtime::RunScope& run) {
  runtime::Outcome outcome = job.stats.exit_reason == "interrupted" ? runtime::Outcome::interrupted
                                                                    : runtime::Outcome::done;
  run.finish(outcome, job.stats.exit_reason, job.stats.counts_json(),
             util::dump({{"as_of", job.as_of.iso},
                         {"forced", job.stats.forced},
                         {"pii_map_digest", settings::pii_map_digest(job.ctx.settings())}}));
}

} // namespace

int run_purge(Context& ctx, const PurgeOptions& opt) {
  util::install_stop_handlers();
  Job job{ctx, limits(ctx, opt), {}, {}, {}, 0, {}};
  runtime::Timings& steps = ctx.timings();
  {
    runtime::Timer t(steps, "lock");
    runtime::lock_pii_writers(ctx, "purge");
  }
  resolve_clock(job, opt);
  plan_batches(job, steps);
  if (opt.dry_run) {
    print_plan(job.stats, ctx.settings(), opt.json);
    return 0;
  }
  if (job.stats.candidates == 0) {
    job.stats.exit_reason = "nothing_due";
    runtime::RunScope run(ctx, "{}");
    job.run_id = run.id();
    record_run(job, run);
    print_stats(job.stats, steps, opt.json);
    return 0;
  }
  check_safety_limits(job, opt);
  sanitize::load_hmac_key(job);
  runtime::RunScope run(
      ctx,
      util::dump({{"as_of", job.as_of.iso}, {"force", opt.force}, {"batch_size", opt.batch_size}}));
  job.run_id = run.id();
  run.counts_on_failure([&job] { return job.stats.counts_json(); });
  run.watch([&] {
    {
      runtime::Timer t(steps, "batches");
      sanitize::run_batches(job);
    }
    {
      runtime::Timer t(steps, "vacuum");
      sanitize::vacuum_touched_tables(job);
    }
    runtime::Timer t(steps, "record");
    record_run(job, run);
  });
  print_stats(job.stats, steps, opt.json);
  return job.stats.exit_reason == "interrupted" ? static_cast<int>(Exit::temporary) : 0;
}

} // namespace lethe::jobs::purge
