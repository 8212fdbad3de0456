#include "worker/runtime/run_scope.hpp"

#include "worker/log/log.hpp"
#include "worker/runtime/runs.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <optional>

namespace lethe::runtime {

const char* outcome_name(Outcome o) noexcept {
  switch (o) {
  case Outcome::done:
    return "done";
  case Outcome::interrupted:
    return "interrupted";
  case Outcome::failed:
    return "failed";
  case Outcome::refused:
    return "refused";
  }
  return "failed";
}

std::string current_exception_reason() noexcept {
  try {
    throw;
  } catch (const Error& e) {
    return exit_name(e.code());
  } catch (const std::filesystem::filesystem_error& e) {
    // The same mapping main uses for its exit code, so the record and the exit agree.
    return exit_name(util::filesystem_error("cannot use", e.path1(), e.code()).code());
  } catch (...) {
    return exit_name(Exit::internal);
  }
}

namespace {

// A whole number as an integer (169, not 169.0), anything else as it is.
util::Json as_json_number(double v) {
  if (std::floor(v) == v && std::fabs(v) < 9e15) {
    return static_cast<long long>(v);
  }
  return v;
}

// The volume alarm (C15) of a run ending with `counts_json` (what it committed, whatever its
// outcome): more than alarms.volume_factor times the median of its job's last 14 successful
// runs, once there are 3.
std::optional<audit::Record> volume_alarm(Context& ctx, db::Transaction& tx, long long run_id,
                                          const std::string& counts_json) {
  db::Rows r = tx.exec("SELECT volume, median, runs FROM lethe.run_volume_baseline($1, $2)",
                       {std::to_string(run_id), counts_json});
  if (!r.at(0, 0) || !r.at(0, 1)) {
    return std::nullopt;
  }
  double volume = std::stod(*r.at(0, 0));
  double median = std::stod(*r.at(0, 1));
  long long runs = r.integer(0, 2);
  double factor = ctx.settings().alarms.volume_factor;
  if (runs < 3 || volume <= factor * std::max(median, 1.0)) {
    return std::nullopt;
  }
  log::event(log::Level::warning, "run.volume_alarm",
             {{"run_id", run_id}, {"volume", volume}, {"median", median}, {"runs", runs}});
  return audit::Record{audit::Kind::alarm,
                       ctx.job(),
                       "anomaly",
                       "volume",
                       run_id,
                       util::dump({{"volume", as_json_number(volume)},
                                   {"median_of_previous", as_json_number(median)},
                                   {"previous_runs", runs},
                                   {"volume_factor", factor}}),
                       "{}"};
}

} // namespace

RunScope::RunScope(Context& ctx, const std::string& options_json)
    : m_ctx(ctx), m_id(begin_run(ctx, options_json)) {}

RunScope::~RunScope() {
  if (!m_finished) {
    fail(std::uncaught_exceptions() > 0 ? "internal" : "unfinished");
  }
}

void RunScope::finish(Outcome outcome, const std::string& exit_reason,
                      const std::string& counts_json, const std::string& details_json) {
  // Marked first: a failure to record is not retried as a second, contradicting record.
  m_finished = true;
  // The volume alarm (of whatever committed, on any outcome) and the closing record in one
  // transaction, the alarm first; the closing record's anchor line covers both.
  std::optional<audit::Stored> closed;
  bool committed = false;
  try {
    m_ctx.ready_db().transact([&](db::Transaction& tx) {
      closed = finish_in(tx, outcome, exit_reason, counts_json, details_json);
    });
    committed = true;
  } catch (const Error& e) {
    log::event(log::Level::warning, "run.close_retried", {{"error", e.what()}});
  }
  if (committed) {
    m_ctx.trail().anchor(*closed);
    return;
  }
  if (closed) {
    // Only the commit failed, so whether it committed is unknown: spooled with its hash, the
    // next run inserts it only if the table lacks that record (the volume alarm, if any, is in
    // the same fate and is not spooled a second time).
    m_ctx.trail().spool(closed->record, audit::Closes::run, closed->hash);
    return;
  }
  // The database refused or was lost before the records: the closing record alone, spooled if
  // it must be.
  finish_run(m_ctx, m_id, audit::Kind::run, outcome_name(outcome), exit_reason, counts_json,
             details_json);
}

audit::Stored RunScope::finish_in(db::Transaction& tx, Outcome outcome,
                                  const std::string& exit_reason, const std::string& counts_json,
                                  const std::string& details_json) {
  m_finished = true;
  // In the caller's transaction, before the closing record, which the caller anchors.
  if (std::optional<audit::Record> alarm = volume_alarm(m_ctx, tx, m_id, counts_json)) {
    m_ctx.trail().append_in(tx, *alarm);
  }
  return m_ctx.trail().append_in(tx,
                                 audit::Record{audit::Kind::run, m_ctx.job(), outcome_name(outcome),
                                               exit_reason, m_id, counts_json, details_json},
                                 audit::Closes::run);
}

void RunScope::fail(const std::string& reason) noexcept {
  if (m_finished) {
    return;
  }
  try {
    finish(Outcome::failed, reason, m_counts ? m_counts() : "{}");
  } catch (...) {
    // The failure being handled is the one the caller reports; the run stays "running" and
    // the next run closes it as abandoned with its committed progress.
    log::event(log::Level::error, "run.failure_not_recorded", {{"run_id", m_id}});
  }
}

} // namespace lethe::runtime
