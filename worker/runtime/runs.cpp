#include "worker/runtime/runs.hpp"

#include "worker/log/log.hpp"
#include "worker/settings/settings.hpp"
#include "worker/util/json.hpp"

namespace lethe::runtime {
namespace {

// The run's advisory lock: classid for lethe's runs, objid from the run id.
constexpr const char* k_run_lock_key = "hashtext('lethe.run'), ($1::bigint % 2147483648)::int";

// Counts of run `run_id` from its progress rows, as a JSON object of numbers.
std::string progress_counts(db::Transaction& tx, const std::string& run_id) {
  db::Rows r = tx.exec("SELECT item, sum(n)::bigint FROM lethe.run_progress WHERE run_id = $1 "
                       "GROUP BY item ORDER BY item",
                       {run_id});
  util::Json o = util::Json::object();
  for (size_t i = 0; i < r.size(); ++i) {
    o[r.text(i, 0)] = r.integer(i, 1);
  }
  return util::dump(o);
}

// Closes run `run_id` when no session holds its lock; the closing record, once committed.
std::optional<audit::Stored> close_if_abandoned(Context& ctx, const std::string& run_id) {
  std::optional<audit::Stored> closed;
  ctx.ready_db().transact([&](db::Transaction& tx) {
    if (tx.exec(std::string("SELECT pg_try_advisory_xact_lock(") + k_run_lock_key + ")", {run_id})
            .text(0, 0) != "t") {
      return; // a session of that run is still working
    }
    db::Rows run = tx.exec(
        "SELECT job, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "backend_pid FROM lethe.job_runs WHERE run_id = $1 AND outcome = 'running'",
        {run_id});
    if (run.empty()) {
      return; // another run closed it first
    }
    util::Json details{{"started_at", run.text(0, 1)}, {"closed_by", ctx.job()}};
    if (run.at(0, 2)) {
      details["backend_pid"] = run.integer(0, 2);
    } else {
      // Begun by a lethe from before schema 3, which recorded no progress: its counts say
      // nothing about what it did, and the record says so rather than implying zero.
      details["progress"] = "unknown: begun before schema 3, which recorded no progress";
    }
    audit::Record r{audit::Kind::run,   run.text(0, 0),     "abandoned",
                    "abandoned",        std::stoll(run_id), progress_counts(tx, run_id),
                    util::dump(details)};
    closed = ctx.trail().append_in(tx, r, audit::Closes::run);
  });
  return closed;
}

} // namespace

size_t close_abandoned_runs(Context& ctx) {
  db::Rows running = ctx.ready_db().exec(
      "SELECT run_id FROM lethe.job_runs WHERE outcome = 'running' ORDER BY run_id");
  size_t closed = 0;
  for (size_t i = 0; i < running.size(); ++i) {
    std::optional<audit::Stored> s = close_if_abandoned(ctx, running.text(i, 0));
    if (s) {
      ++closed;
      log::event(log::Level::notice, "run.abandoned_closed",
                 {{"run_id", *s->record.run_id}, {"job", s->record.job}});
      ctx.trail().anchor(*s);
    }
  }
  return closed;
}

long long begin_run(Context& ctx, const std::string& options_json) {
  close_abandoned_runs(ctx);
  long long run_id = 0;
  ctx.ready_db().transact([&](db::Transaction& tx) {
    db::Rows r = tx.exec(
        "INSERT INTO lethe.job_runs (job, actor, os_user, unit, lethe_version, pii_map_digest, "
        "options, backend_pid, backend_start) VALUES ($1, $2, $3, $4, $5, $6, $7, "
        "pg_backend_pid(), (SELECT backend_start FROM pg_stat_activity WHERE pid = "
        "pg_backend_pid())) RETURNING run_id",
        {ctx.job(), ctx.who().actor, ctx.who().os_user, ctx.who().unit, std::string(LETHE_VERSION),
         settings::pii_map_digest(ctx.settings()), options_json});
    run_id = r.integer(0, 0);
    // Taken before the row is visible to anyone, so no one sees it running and unlocked.
    tx.exec(std::string("SELECT pg_advisory_lock_shared(") + k_run_lock_key + ")",
            {std::to_string(run_id)});
  });
  return run_id;
}

void join_run(db::Session& session, long long run_id) {
  session.exec(std::string("SELECT pg_advisory_lock_shared(") + k_run_lock_key + ")",
               {std::to_string(run_id)});
}

void add_progress(db::Transaction& tx, long long run_id, int worker,
                  const std::vector<std::pair<std::string, long long>>& items) {
  std::vector<db::Value> names;
  std::vector<db::Value> amounts;
  for (const auto& [name, n] : items) {
    names.emplace_back(name);
    amounts.emplace_back(std::to_string(n));
  }
  // Schema 5's definer function: progress only grows, and only for a running run.
  tx.exec("SELECT lethe.add_run_progress($1::bigint, $2::int, $3::text[], $4::bigint[])",
          {std::to_string(run_id), std::to_string(worker), db::array_literal(names),
           db::array_literal(amounts)});
}

void finish_run(Context& ctx, long long run_id, audit::Kind kind, const std::string& outcome,
                const std::string& exit_reason, const std::string& counts_json,
                const std::string& details_json) {
  ctx.record(
      audit::Record{kind, ctx.job(), outcome, exit_reason, run_id, counts_json, details_json},
      audit::Closes::run);
}

} // namespace lethe::runtime
