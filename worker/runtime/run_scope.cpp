#include "worker/runtime/run_scope.hpp"

#include "worker/log/log.hpp"
#include "worker/runtime/runs.hpp"
#include "worker/util/files.hpp"

#include <exception>
#include <filesystem>

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
  finish_run(m_ctx, m_id, audit::Kind::run, outcome_name(outcome), exit_reason, counts_json,
             details_json);
}

audit::Stored RunScope::finish_in(db::Transaction& tx, Outcome outcome,
                                  const std::string& exit_reason, const std::string& counts_json,
                                  const std::string& details_json) {
  m_finished = true;
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
