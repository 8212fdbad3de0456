// The engine's steps around the batch loop: planning from the catalog facts, the hmac key,
// and VACUUM of what changed.
#include "worker/sanitize/engine.hpp"

#include "worker/log/log.hpp"
#include "worker/util/files.hpp"
#include "worker/util/parallel.hpp"

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <thread>

namespace lethe::sanitize {

void plan(Job& job, const Selection& sel, Action action) {
  db::Session& s = job.ctx.ready_db();
  db::require_current_state_views(s, job.ctx.settings());
  job.plan = build_plan(job.ctx.settings(), db::read_facts(s, job.ctx.settings()), sel, action);
  prepare_session(s, job.plan);
  job.stats.as_of = job.as_of.iso;
  for (const settings::PiiTable* t : job.ctx.settings().pii_tables()) {
    job.stats.find(t->table);
  }
}

namespace {

// Whole-table counts get the planner's every join method, unlike the batches.
void free_planner(db::Transaction& tx) {
  tx.exec("SET LOCAL enable_hashjoin = on");
  tx.exec("SET LOCAL enable_mergejoin = on");
  tx.exec("SET LOCAL enable_seqscan = on");
}

// Each child table's rows with PII due and held, on their own connection.
void count_children(Job& job, db::Session& s) {
  s.transact([&job](db::Transaction& tx) {
    free_planner(tx);
    for (const auto& [table, sql] : job.plan.count_children) {
      db::Rows r = tx.exec(sql, {job.as_of.iso});
      TableStats* ts = job.stats.find(table);
      ts->due = r.integer(0, 0);
      ts->held = r.integer(0, 1);
    }
  });
}

} // namespace

void count(Job& job) {
  db::Session& s = job.ctx.ready_db();
  if (job.plan.count_due.empty()) {
    s.transact([&job](db::Transaction& tx) {
      free_planner(tx);
      job.stats.candidates = tx.exec(job.plan.count_candidates, {job.as_of.iso}).integer(0, 0);
    });
    return;
  }
  // The child tables are counted on a second connection while this one walks the root: the
  // two passes are independent, and each keeps a core busy.
  for (const auto& [table, sql] : job.plan.count_children) {
    job.stats.find(table); // before the thread starts: find() may add to the table list
  }
  std::unique_ptr<db::Session> helper;
  if (!job.plan.count_children.empty()) {
    helper = db::connect(job.ctx.settings());
  }
  util::in_parallel(
      [&] {
        s.transact([&job](db::Transaction& tx) {
          free_planner(tx);
          db::Rows r = tx.exec(job.plan.count_due, {job.as_of.iso});
          job.stats.root_rows = r.integer(0, 0);
          job.stats.candidates = r.integer(0, 1);
          job.stats.orders_held = r.integer(0, 2);
          TableStats* root = job.stats.find(job.ctx.settings().root.table.table);
          root->due = r.integer(0, 3);
          root->held = r.integer(0, 4);
        });
      },
      helper ? std::function<void()>([&] { count_children(job, *helper); })
             : std::function<void()>());
  // A table with nothing due at the start is left out of every batch; what falls due during
  // the run is the next run's.
  for (TableStep& st : job.plan.steps) {
    st.skip = job.stats.find(st.table->table)->due == 0;
  }
}

void load_hmac_key(Job& job) {
  if (!job.ctx.settings().hmac_key_file.empty()) {
    job.hmac_key = util::read_secret_file(job.ctx.settings().hmac_key_file, "hmac key");
  }
}

namespace {

// VACUUM (INDEX_CLEANUP ON, ANALYZE) of `t` on `s` where the role may; records what happened.
// - INDEX_CLEANUP ON: by default (AUTO) PostgreSQL 14+ skips the index pass when under 2% of
//   the table's pages hold removed rows, and the removed rows' index entries stay in the index,
//   key values and all: after one buyer's erase, the buyer's email stayed an item of the
//   buyer-column index (seen with pageinspect). ON removes them.
// - ANALYZE, however few rows changed: pg_statistic keeps sampled column values (most common
//   values, histogram bounds), which can be the very values just erased or sanitized; a new
//   sample of the table replaces them. (It costs: 190 ms of sampling for one buyer's rows in
//   600,000 orders. A request pays it after its live_erased record.)
void vacuum_one(db::Session& s, TableStats& t) {
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
    return;
  }
  auto t0 = Clock::now();
  s.exec("VACUUM (INDEX_CLEANUP ON, ANALYZE) " + db::quote_ident(t.table));
  t.vacuum = "done";
  t.vacuum_seconds = seconds_since(t0);
}

} // namespace

void vacuum_touched_tables(Job& job) {
  std::vector<TableStats*> touched;
  for (TableStats& t : job.stats.tables) {
    if (t.sanitized > 0) {
      touched.push_back(&t);
    }
  }
  vacuum_tables(job.ctx, touched);
  db::Session& s = job.ctx.ready_db();
  for (TableStats& t : job.stats.tables) {
    db::Rows d = s.exec("SELECT n_dead_tup FROM pg_stat_all_tables WHERE relid = to_regclass($1)",
                        {db::quote_ident(t.table)});
    t.dead_tuples = d.empty() || !d.at(0, 0) ? -1 : d.integer(0, 0);
  }
}

void vacuum_tables(Context& ctx, const std::vector<TableStats*>& touched) {
  db::Session& s = ctx.ready_db();
  // Our own row counts reach the statistics only when this backend flushes them; flush before
  // VACUUM, or they would land after it and count the removed tuples as dead again.
  s.exec("SELECT pg_stat_force_next_flush()");
  s.exec("SELECT 1");
  // Two tables or more: a second connection takes every other one, so two VACUUMs run at once
  // (each is mostly one core's work: reading pages, pruning, index cleanup).
  std::unique_ptr<db::Session> helper;
  if (touched.size() > 1) {
    helper = db::connect(ctx.settings());
  }
  std::atomic<size_t> next{0};
  auto work = [&](db::Session& session) {
    try {
      for (size_t i = next++; i < touched.size(); i = next++) {
        vacuum_one(session, *touched[i]);
      }
    } catch (...) {
      next = touched.size(); // the other connection stops after its current table
      throw;
    }
  };
  util::in_parallel([&] { work(s); }, helper ? std::function<void()>([&] { work(*helper); })
                                             : std::function<void()>());
}

} // namespace lethe::sanitize
