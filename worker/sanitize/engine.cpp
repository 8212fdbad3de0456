// The engine's steps around the batch loop: planning from the catalog facts, the hmac key,
// and VACUUM of what changed.
#include "worker/sanitize/engine.hpp"

#include "worker/log/log.hpp"
#include "worker/util/files.hpp"

namespace lethe::sanitize {

void plan(Job& job, const Selection& sel, Action action) {
  db::Session& s = job.ctx.ready_db();
  prepare_session(s);
  db::require_current_state_views(s, job.ctx.settings());
  job.plan = build_plan(job.ctx.settings(), db::read_facts(s, job.ctx.settings()), sel, action);
  job.stats.as_of = job.as_of.iso;
  job.stats.candidates = s.exec(job.plan.count_candidates, {job.as_of.iso}).integer(0, 0);
  for (const settings::PiiTable* t : job.ctx.settings().pii_tables()) {
    job.stats.find(t->table);
  }
}

void load_hmac_key(Job& job) {
  if (!job.ctx.settings().hmac_key_file.empty()) {
    job.hmac_key = util::read_secret_file(job.ctx.settings().hmac_key_file, "hmac key");
  }
}

void vacuum_touched_tables(Job& job) {
  db::Session& s = job.ctx.ready_db();
  // Our own row counts reach the statistics only when this backend flushes them; flush before
  // VACUUM, or they would land after it and count the removed tuples as dead again.
  s.exec("SELECT pg_stat_force_next_flush()");
  s.exec("SELECT 1");
  for (TableStats& t : job.stats.tables) {
    if (t.sanitized == 0) {
      continue;
    }
    db::Rows may =
        s.exec("SELECT pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE') FROM "
               "pg_class c, pg_database d WHERE c.oid = to_regclass($1) AND d.datname = "
               "current_database()",
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
  for (TableStats& t : job.stats.tables) {
    db::Rows d = s.exec("SELECT n_dead_tup FROM pg_stat_all_tables WHERE relid = to_regclass($1)",
                        {db::quote_ident(t.table)});
    t.dead_tuples = d.empty() || !d.at(0, 0) ? -1 : d.integer(0, 0);
  }
}

} // namespace lethe::sanitize
