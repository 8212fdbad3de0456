// What every command works with: settings, who runs it, the audit trail and the database
// session, passed explicitly (no globals).
#pragma once

#include "worker/audit/trail.hpp"
#include "worker/db/session.hpp"
#include "worker/runtime/timer.hpp"
#include "worker/settings/settings.hpp"
#include "worker/util/identity.hpp"

#include <memory>
#include <string>

namespace lethe {

class Context {
public:
  Context(settings::Settings s, util::Identity who, std::string job);

  // The session, connected on first use. A refused connection (TLS, server down) is spooled as
  // an audit refusal before the error propagates.
  db::Session& db();

  // The session after checking lethe's schema is current; moves spooled audit records in.
  db::Session& ready_db();

  // The session if one was connected, else nullptr (never connects).
  db::Session* session_if_connected() noexcept { return m_session.get(); }

  // Writes the audit record `r` (with `closes` = run, also ends r.run_id's job_runs row in the
  // same transaction), then anchors it. Spools it only when its insert did not commit; throws
  // Error(io) when the anchor append fails after the commit (the run has failed).
  void record(const audit::Record& r, audit::Closes closes = audit::Closes::nothing);

  const settings::Settings& settings() const noexcept { return m_settings; }
  const util::Identity& who() const noexcept { return m_trail.identity(); }
  audit::Trail& trail() noexcept { return m_trail; }
  const std::string& job() const noexcept { return m_job; }
  // The command's step timings (runtime::Timer adds to them).
  runtime::Timings& timings() noexcept { return m_timings; }

private:
  settings::Settings m_settings;
  audit::Trail m_trail;
  std::string m_job;
  std::unique_ptr<db::Session> m_session;
  bool m_ready = false;
  runtime::Timings m_timings;
};

} // namespace lethe
