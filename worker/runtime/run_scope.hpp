// RunScope: a job run's bookkeeping as a scope. It begins the run (a job_runs row, its lock,
// abandoned runs closed first) and finishes it exactly once on every path out: `finish` on
// success or a stop, and on an exception the failure with what the run had counted so far —
// whether the exception is a lethe::Error, a file system error or anything else (a run left
// "running" by a live process would otherwise look alive until the next run closed it as
// abandoned, and say less than was known).
#pragma once

#include "worker/runtime/context.hpp"

#include <functional>
#include <string>

namespace lethe::runtime {

// How a run ended; the stored words are stable (job_runs.outcome, audit rows).
enum class Outcome { done, interrupted, failed, refused };

const char* outcome_name(Outcome o) noexcept;

// The exit-reason word for the exception being handled (call inside a catch block): the
// Error's exit name, a file system error's as main maps it (73/74/77), "internal" for anything
// else.
std::string current_exception_reason() noexcept;

class RunScope {
public:
  // Begins a run of ctx.job() with its options (JSON object text).
  RunScope(Context& ctx, const std::string& options_json);
  RunScope(const RunScope&) = delete;
  RunScope& operator=(const RunScope&) = delete;
  // Finishes an unfinished run as failed (the reason: the exception in flight, or "internal"
  // when a path left without finishing). Never throws.
  ~RunScope();

  long long id() const noexcept { return m_id; }

  // What a failure record says the run did: called when the run fails.
  void counts_on_failure(std::function<std::string()> counts) { m_counts = std::move(counts); }

  // Writes the run's closing record (kind run) and its job_runs outcome, in one transaction.
  void finish(Outcome outcome, const std::string& exit_reason, const std::string& counts_json,
              const std::string& details_json = "{}");

  // As finish, inside the caller's transaction `tx`, so the closing record commits with the fact
  // it proves; the caller anchors the returned record (ctx.trail().anchor) after the commit. If
  // the commit fails, the run stays open and the next run closes it as abandoned.
  audit::Stored finish_in(db::Transaction& tx, Outcome outcome, const std::string& exit_reason,
                          const std::string& counts_json, const std::string& details_json = "{}");

  // Runs `body`; on any exception records the failure, then rethrows it.
  template <class F>
  decltype(auto) watch(F&& body) {
    try {
      return body();
    } catch (...) {
      fail(current_exception_reason());
      throw;
    }
  }

private:
  void fail(const std::string& reason) noexcept;

  Context& m_ctx;
  long long m_id = 0;
  bool m_finished = false;
  std::function<std::string()> m_counts;
};

} // namespace lethe::runtime
