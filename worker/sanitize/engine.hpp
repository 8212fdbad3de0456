// The sanitize engine: walks the orders a Selection takes in small committed batches, over one
// or more connections, and applies an Action to every PII-map table's rows of each batch
// (children deepest first, the root last). Used by the purge, the archive job and, next,
// deletion requests; each is a runbook over it.
//
// Promises: one transaction per batch, which picks its orders (or re-checks those a request's
// lane picked) with the selection's own test inside it, so a crash or a
// stop loses at most the open batch and the next run continues from the data; each batch adds
// its counts to the run's progress in the same transaction; batch size adapts to keep a
// transaction near 0.15 s; lock timeouts back off and retry, then leave the batch for the next
// run (counted as skipped); plans stay index-driven (checked with EXPLAIN).
#pragma once

#include "worker/db/clock.hpp"
#include "worker/runtime/context.hpp"
#include "worker/sanitize/plan.hpp"
#include "worker/sanitize/stats.hpp"
#include "worker/util/secret.hpp"

#include <chrono>
#include <string>

namespace lethe::sanitize {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// How hard the engine works: the configured defaults or a command's overrides.
struct Limits {
  long batch_size = 1000; // starting size; adapts between 20 and 8× this
  int workers = 2;        // connections, each taking the orders whose key hashes to its share
};

// One engine run: its plan, its instant, and what it did.
struct Job {
  Context& ctx;
  Limits limits;
  db::Instant as_of;
  Plan plan;
  Stats stats;
  long long run_id = 0;  // the job_runs row batches report progress to (0: none)
  util::Secret hmac_key; // wiped when the run ends
};

// Session settings for batch work: index-driven plans only (and, for a request's lane, key
// order only); release_session puts the session's planner back as it was, for what follows.
void prepare_session(db::Session& s, const Plan& p);
void release_session(db::Session& s);

// Reads the catalog facts and builds `job.plan` for `sel` and `action` on the context's session
// (prepared for batch work).
void plan(Job& job, const Selection& sel, Action action);

// Counts what the plan takes now into job.stats.candidates; for Selection::due, in the same
// pass, all root rows, the held orders and each table's due and held rows with PII (and marks
// the steps of tables with nothing due to be skipped). Whole-table counts get the planner's
// every join method, unlike the batches.
void count(Job& job);

// Reads the hmac key when the map has hmac columns and the configuration names a key file.
void load_hmac_key(Job& job);

// Puts the hmac key's two pads (RFC 2104) into the session's temporary table k_hmac_key_table
// through COPY, so SQL can compute the HMAC (db::hmac_hex_sql) with the key never in a
// statement's text or parameters; drop_key_pads removes them (the session's end does too).
void load_key_pads(db::Session& s, const util::Secret& key);
void drop_key_pads(db::Session& s) noexcept;

// Walks the planned orders in batches over `job.limits.workers` connections (disjoint by key
// hash) and applies the plan; fills job.stats. Stops early on SIGTERM (exit reason
// "interrupted"). Wipes the hmac key at the end, on every path.
void run_batches(Job& job);

// VACUUM (INDEX_CLEANUP ON, ANALYZE) of every table the job changed, where the role may
// (PostgreSQL 15: the owner); reports each table's dead tuples after it.
void vacuum_touched_tables(Job& job);

// The same VACUUM of `tables`, two at a time on two connections; fills each one's vacuum and
// vacuum_seconds.
void vacuum_tables(Context& ctx, const std::vector<TableStats*>& tables);

} // namespace lethe::sanitize
