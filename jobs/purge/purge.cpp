#include "jobs/purge/purge.hpp"

#include "jobs/check/check.hpp"
#include "jobs/purge/run.hpp"
#include "worker/audit/runs.hpp"
#include "worker/db/clock.hpp"
#include "worker/log/log.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"
#include "worker/util/signals.hpp"

#include <chrono>
#include <cstdio>

namespace lethe::jobs::purge {
namespace {

void lock_job(Run& run) {
  lock_pii_writers(run.ctx, "purge");
}

void resolve_clock(Run& run) {
  run.as_of = db::resolve_instant(run.ctx.ready_db(), run.opt.as_of);
  if (run.as_of.future && !run.opt.dry_run) {
    throw Error(Exit::usage, "--as-of " + run.as_of.iso + " is in the future",
                "purging ahead of the clock is refused; add --dry-run to preview it");
  }
  run.stats.as_of = run.as_of.iso;
}

void plan_batches(Run& run) {
  db::Session& s = run.ctx.ready_db();
  prepare_session(s);
  run.plan = build_plan(s, run.ctx.settings());
  run.stats.candidates = s.exec(run.plan.count_candidates, {run.as_of.iso}).integer(0, 0);
  run.stats.root_rows = s.exec(run.plan.count_root).integer(0, 0);
  run.stats.orders_held = s.exec(run.plan.count_held, {run.as_of.iso}).integer(0, 0);
  check::CheckResult due = check::overdue_pii(run.ctx, run.as_of.iso);
  for (const check::TableStatus& t : due.tables) {
    TableStats* ts = run.stats.find(t.table);
    ts->due = t.overdue;
    ts->held = t.held;
  }
  // A table with nothing due at the start is left out of every batch; what falls due during
  // the run is the next run's.
  for (TableStep& st : run.plan.steps) {
    st.skip = run.stats.find(st.table->table)->due == 0;
  }
}

void check_safety_limits(Run& run) {
  const settings::Settings& s = run.ctx.settings();
  double fraction = run.stats.root_rows == 0 ? 0.0
                                             : static_cast<double>(run.stats.candidates) /
                                                   static_cast<double>(run.stats.root_rows);
  std::string limit;
  if (run.stats.candidates > s.purge.max_rows_per_run) {
    limit = "purge.max_rows_per_run = " + std::to_string(s.purge.max_rows_per_run);
  } else if (fraction > s.purge.max_fraction_of_table) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s.purge.max_fraction_of_table);
    limit = "purge.max_fraction_of_table = " + std::string(buf);
  }
  if (limit.empty()) {
    return;
  }
  util::JsonObject counts;
  counts.add("orders_due", run.stats.candidates).add("root_rows", run.stats.root_rows);
  if (run.opt.force) {
    run.stats.forced = true;
    log::event(
        log::Level::warning, "purge.safety_limit_forced",
        {{"limit", limit}, {"orders_due", run.stats.candidates}, {"actor", run.ctx.who().actor}});
    return;
  }
  run.ctx.record(audit::Record{audit::Kind::alarm, "purge", "refused", "safety_limit", std::nullopt,
                               counts.str(), util::JsonObject().add("limit", limit).str()});
  throw Error(Exit::data,
              "the purge would sanitize " + std::to_string(run.stats.candidates) + " of " +
                  std::to_string(run.stats.root_rows) + " orders, above " + limit,
              "check why so much is due (clock column, retention.days); to proceed anyway run "
              "`lethe purge --force --operator NAME`, which the audit trail records");
}

void vacuum_touched_tables(Run& run) {
  db::Session& s = run.ctx.ready_db();
  // Our own row counts reach the statistics only when this backend flushes them; flush before
  // VACUUM, or they would land after it and count the removed tuples as dead again.
  s.exec("SELECT pg_stat_force_next_flush()");
  s.exec("SELECT 1");
  for (TableStats& t : run.stats.tables) {
    if (t.sanitized == 0) {
      continue;
    }
    db::Rows may =
        s.exec("SELECT pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE') FROM "
               "pg_class c, "
               "pg_database d WHERE c.oid = to_regclass($1) AND d.datname = current_database()",
               {db::quote_ident(t.table)});
    if (may.empty() || may.text(0, 0) != "t") {
      t.vacuum = "skipped: not owner";
      log::event(log::Level::warning, "purge.vacuum_skipped",
                 {{"table", t.table},
                  {"hint", "PostgreSQL 15 lets only the owner VACUUM; autovacuum will clean "
                           "the dead tuples, or run VACUUM as the owner"}});
      continue;
    }
    auto t0 = Clock::now();
    s.exec("VACUUM (ANALYZE) " + db::quote_ident(t.table));
    t.vacuum = "done";
    t.vacuum_seconds = seconds_since(t0);
  }
  for (TableStats& t : run.stats.tables) {
    db::Rows d = s.exec("SELECT n_dead_tup FROM pg_stat_all_tables WHERE relid = to_regclass($1)",
                        {db::quote_ident(t.table)});
    t.dead_tuples = d.empty() || !d.at(0, 0) ? -1 : d.integer(0, 0);
  }
}

void record_run(Run& run) {
  std::string outcome = run.stats.exit_reason == "interrupted" ? "interrupted" : "done";
  audit::finish_run(run.ctx, run.run_id, audit::Kind::run, outcome, run.stats.exit_reason,
                    run.stats.counts_json(),
                    util::JsonObject()
                        .add("as_of", run.as_of.iso)
                        .add("forced", run.stats.forced)
                        .add("pii_map_digest", settings::pii_map_digest(run.ctx.settings()))
                        .str());
}

} // namespace

void lock_pii_writers(Context& ctx, const std::string& job) {
  db::Rows r = ctx.ready_db().exec("SELECT pg_try_advisory_lock(hashtext('lethe.purge'))");
  if (r.text(0, 0) != "t") {
    ctx.record(
        audit::Record{audit::Kind::refusal, job, "refused", "lock_held", std::nullopt, "{}", "{}"});
    throw Error(Exit::temporary, "another lethe purge or archive run is working on this database",
                "wait for it to finish; the timer runs the " + job + " again");
  }
}

RunStats sanitize_archived_orders(Context& ctx, const std::string& as_of, long long run_id) {
  PurgeOptions opt;
  opt.as_of = as_of;
  Run run{ctx, opt, {}, {}, {}, run_id, {}};
  resolve_clock(run);
  db::Session& s = ctx.ready_db();
  prepare_session(s);
  run.plan = build_plan(s, ctx.settings(), Scope::archived_only);
  run.stats.candidates = s.exec(run.plan.count_candidates, {run.as_of.iso}).integer(0, 0);
  for (const settings::PiiTable* t : ctx.settings().pii_tables()) {
    run.stats.find(t->table);
  }
  if (!ctx.settings().hmac_key_file.empty()) {
    run.hmac_key = util::read_secret_file(ctx.settings().hmac_key_file, "hmac key");
  }
  sanitize_batches(run);
  run.hmac_key.wipe();
  vacuum_touched_tables(run);
  return run.stats;
}

int run_purge(Context& ctx, const PurgeOptions& opt) {
  util::install_stop_handlers();
  Run run{ctx, opt, {}, {}, {}, 0, {}};
  lock_job(run);
  resolve_clock(run);
  plan_batches(run);
  if (opt.dry_run) {
    print_plan(run.stats, ctx.settings(), opt.json);
    return 0;
  }
  if (run.stats.candidates == 0) {
    run.stats.exit_reason = "nothing_due";
    run.run_id = audit::begin_run(ctx, "{}");
    record_run(run);
    print_stats(run.stats, opt.json);
    return 0;
  }
  check_safety_limits(run);
  if (!ctx.settings().hmac_key_file.empty()) {
    run.hmac_key = util::read_secret_file(ctx.settings().hmac_key_file, "hmac key");
  }
  run.run_id = audit::begin_run(ctx, util::JsonObject()
                                         .add("as_of", run.as_of.iso)
                                         .add("force", opt.force)
                                         .add("batch_size", opt.batch_size)
                                         .str());
  try {
    sanitize_batches(run);
    run.hmac_key.wipe();
    vacuum_touched_tables(run);
  } catch (const Error& e) {
    run.hmac_key.wipe();
    audit::finish_run(ctx, run.run_id, audit::Kind::run, "failed", exit_name(e.code()),
                      run.stats.counts_json());
    throw;
  }
  record_run(run);
  print_stats(run.stats, opt.json);
  return run.stats.exit_reason == "interrupted" ? static_cast<int>(Exit::temporary) : 0;
}

} // namespace lethe::jobs::purge
