#include "jobs/purge/purge.hpp"

#include "jobs/check/check.hpp"
#include "jobs/purge/plan.hpp"
#include "jobs/purge/report.hpp"
#include "worker/audit/runs.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/clock.hpp"
#include "worker/log/log.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"
#include "worker/util/signals.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <regex>
#include <thread>

namespace lethe::jobs::purge {
namespace {

using Clock = std::chrono::steady_clock;

constexpr long k_min_batch = 20;
constexpr double k_target_tx_s = 0.15; // keep each transaction well under 0.5 s
constexpr int k_lock_retries = 8;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Run {
  Context& ctx;
  const PurgeOptions& opt;
  db::Instant as_of;
  Plan plan;
  RunStats stats;
  long long run_id = 0;
  std::string hmac_key;
};

void lock_job(Run& run) {
  db::Rows r = run.ctx.ready_db().exec("SELECT pg_try_advisory_lock(hashtext('lethe.purge'))");
  if (r.text(0, 0) != "t") {
    run.ctx.record(audit::Record{audit::Kind::refusal, "purge", "refused", "lock_held",
                                 std::nullopt, "{}", "{}"});
    throw Error(Exit::temporary, "another lethe purge is running against this database",
                "wait for it to finish; the timer runs the purge again");
  }
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
  // Index-driven plans only: every batch statement is a key lookup, and a hash join over a
  // whole child table would hold the batch's locks for as long as the scan takes.
  s.exec("SET enable_hashjoin = off");
  s.exec("SET enable_mergejoin = off");
  s.exec("SET enable_seqscan = off");
  run.plan = build_plan(s, run.ctx.settings());
  run.stats.candidates = s.exec(run.plan.count_candidates, {run.as_of.iso}).integer(0, 0);
  run.stats.root_rows = s.exec(run.plan.count_root).integer(0, 0);
  check::CheckResult due = check::overdue_pii(run.ctx, run.as_of.iso);
  for (const check::TableStatus& t : due.tables) {
    TableStats* ts = run.stats.find(t.table);
    ts->due = t.overdue;
    ts->held = t.held;
  }
}

void check_safety_limits(Run& run) {
  const settings::Settings& s = run.ctx.settings();
  double fraction = run.stats.root_rows == 0 ? 0.0
                                             : static_cast<double>(run.stats.candidates) /
                                                   static_cast<double>(run.stats.root_rows);
  std::string limit;
  if (run.stats.candidates > s.max_rows_per_run) {
    limit = "purge.max_rows_per_run = " + std::to_string(s.max_rows_per_run);
  } else if (fraction > s.max_fraction_of_table) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s.max_fraction_of_table);
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

std::string pseudonymize(const std::string& key, const std::string& value) {
  return "hmac:" + crypto::hex(crypto::hmac_sha256(key, value));
}

// Reads the batch's hmac columns, pseudonymizes them here and writes them back.
long long apply_hmac(Run& run, db::Transaction& tx, const TableStep& st, const std::string& keys) {
  static const std::regex k_done("^hmac:[0-9a-f]{64}$");
  db::Rows rows = tx.exec(st.hmac_select, {keys});
  std::vector<db::Value> ids;
  std::vector<std::vector<db::Value>> cols(st.hmac_columns.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    bool needed = false;
    for (size_t c = 0; c < st.hmac_columns.size(); ++c) {
      const db::Value& v = rows.at(i, c + 1);
      needed = needed || (v && !std::regex_match(*v, k_done));
    }
    if (!needed) {
      continue;
    }
    ids.push_back(rows.at(i, 0));
    for (size_t c = 0; c < st.hmac_columns.size(); ++c) {
      const db::Value& v = rows.at(i, c + 1);
      cols[c].push_back(
          !v || std::regex_match(*v, k_done) ? v : db::Value(pseudonymize(run.hmac_key, *v)));
    }
  }
  if (ids.empty()) {
    return 0;
  }
  db::Params params{db::array_literal(ids)};
  for (const auto& c : cols) {
    params.push_back(db::array_literal(c));
  }
  return static_cast<long long>(tx.exec(st.hmac_update, params).affected());
}

// One batch in one transaction: children first, the root last. Returns false when its locks
// could not be had after retries (the keys are left for the next run).
bool sanitize_batch(Run& run, const std::vector<db::Value>& candidates) {
  std::string keys = db::array_literal(candidates);
  for (int attempt = 0;; ++attempt) {
    std::vector<long long> affected(run.plan.steps.size(), 0);
    auto started = Clock::now();
    try {
      run.ctx.ready_db().transact([&](db::Transaction& tx) {
        db::Rows guarded = tx.exec(run.plan.guard, {keys, run.as_of.iso});
        std::vector<db::Value> ids;
        for (size_t i = 0; i < guarded.size(); ++i) {
          ids.push_back(guarded.at(i, 0));
        }
        std::string g = db::array_literal(ids);
        for (size_t i = 0; i < run.plan.steps.size(); ++i) {
          const TableStep& st = run.plan.steps[i];
          if (!st.sanitize.empty()) {
            affected[i] += static_cast<long long>(tx.exec(st.sanitize, {g}).affected());
          }
          if (!st.hmac_columns.empty()) {
            affected[i] = std::max(affected[i], apply_hmac(run, tx, st, g));
          }
        }
      });
    } catch (const db::DbError& e) {
      if (!e.lock_timeout() || attempt + 1 >= k_lock_retries) {
        if (e.lock_timeout()) {
          run.stats.skipped_locked += static_cast<long long>(candidates.size());
          log::event(log::Level::warning, "purge.batch_skipped",
                     {{"orders", candidates.size()}, {"reason", "lock_timeout"}});
          return false;
        }
        throw;
      }
      ++run.stats.lock_retries;
      auto backoff = std::chrono::milliseconds(100L << std::min(attempt, 5));
      log::event(log::Level::notice, "purge.lock_backoff",
                 {{"attempt", attempt + 1}, {"ms", static_cast<long>(backoff.count())}});
      std::this_thread::sleep_for(backoff);
      continue;
    }
    double took = seconds_since(started);
    run.stats.tx_seconds.push_back(took);
    for (size_t i = 0; i < run.plan.steps.size(); ++i) {
      TableStats* ts = run.stats.find(run.plan.steps[i].table->table);
      ts->sanitized += affected[i];
      ts->batches += affected[i] > 0 ? 1 : 0;
    }
    return true;
  }
}

// True when the keyset query for this batch is driven by indexes (no sequential scan, no hash
// or merge join); the naive keyset plan flips to a hash join as batches grow.
bool index_driven(Run& run, const std::string& sql, const db::Params& params) {
  db::Rows r = run.ctx.ready_db().exec("EXPLAIN (FORMAT JSON) " + sql, params);
  const std::string& plan = r.text(0, 0);
  ++run.stats.plan_checks;
  return plan.find("\"Seq Scan\"") == std::string::npos &&
         plan.find("\"Hash Join\"") == std::string::npos &&
         plan.find("\"Merge Join\"") == std::string::npos &&
         plan.find("Hash Semi Join") == std::string::npos;
}

long adapt(long size, double took, long configured) {
  if (took > 2 * k_target_tx_s) {
    return std::max(k_min_batch, size / 2);
  }
  if (took < k_target_tx_s / 2) {
    return std::min(configured * 8, size + size / 2);
  }
  return size;
}

void sanitize_batches(Run& run) {
  db::Session& s = run.ctx.ready_db();
  long configured = run.opt.batch_size > 0 ? run.opt.batch_size : run.ctx.settings().batch_size;
  long size = configured;
  std::optional<std::string> last;
  Progress progress(run.stats.candidates);
  auto started = Clock::now();
  bool warned = false;
  while (true) {
    if (util::stop_requested()) {
      run.stats.exit_reason = "interrupted";
      break;
    }
    db::Params params{run.as_of.iso, std::to_string(size)};
    const std::string* sql = &run.plan.candidates_first;
    if (last) {
      params.push_back(*last);
      sql = &run.plan.candidates_next;
    }
    if (!index_driven(run, *sql, params)) {
      ++run.stats.plan_violations;
      if (!warned) {
        warned = true;
        log::event(
            log::Level::warning, "purge.plan_not_indexed",
            {{"batch_size", size}, {"hint", "index the root key and each child's link column"}});
      }
    }
    db::Rows cand = s.exec(*sql, params);
    if (cand.empty()) {
      break;
    }
    std::vector<db::Value> keys;
    for (size_t i = 0; i < cand.size(); ++i) {
      keys.push_back(cand.at(i, 0));
    }
    auto t0 = Clock::now();
    if (sanitize_batch(run, keys)) {
      ++run.stats.batches;
      run.stats.orders_done += static_cast<long long>(keys.size());
      log::event(log::Level::debug, "purge.batch",
                 {{"orders", keys.size()},
                  {"batch_size", size},
                  {"ms", static_cast<long>(seconds_since(t0) * 1000)}});
    }
    last = *keys.back();
    size = adapt(size, seconds_since(t0), configured);
    progress.update(run.stats.orders_done, seconds_since(started));
  }
  progress.finish();
  run.stats.seconds = seconds_since(started);
  if (run.stats.exit_reason.empty()) {
    run.stats.exit_reason = run.stats.skipped_locked > 0 ? "done_with_skips" : "done";
  }
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
    run.hmac_key.assign(run.hmac_key.size(), '\0');
    vacuum_touched_tables(run);
  } catch (const Error& e) {
    run.hmac_key.assign(run.hmac_key.size(), '\0');
    audit::finish_run(ctx, run.run_id, audit::Kind::run, "failed", exit_name(e.code()),
                      run.stats.counts_json());
    throw;
  }
  record_run(run);
  print_stats(run.stats, opt.json);
  return run.stats.exit_reason == "interrupted" ? static_cast<int>(Exit::temporary) : 0;
}

} // namespace lethe::jobs::purge
