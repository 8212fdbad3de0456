#include "worker/runtime/context.hpp"

#include "worker/db/migrations.hpp"
#include "worker/log/log.hpp"
#include "worker/util/json.hpp"

#include <optional>

namespace lethe {

Context::Context(settings::Settings s, util::Identity who, std::string job)
    : m_settings(std::move(s)),
      m_trail(m_settings.audit.anchor_file, m_settings.audit.spool_file, std::move(who)),
      m_job(std::move(job)) {}

db::Session& Context::db() {
  if (m_session) {
    return *m_session;
  }
  try {
    m_session = db::connect(m_settings);
  } catch (const db::TlsRefused&) {
    // An alarm (C15): a server or a path that does not offer verified TLS. It opens an incident
    // when the next run that connects moves it in.
    audit::Record r{audit::Kind::alarm,
                    m_job,
                    "refused",
                    "tls_refused",
                    std::nullopt,
                    "{}",
                    util::dump({{"reason", "no verified TLS"}})};
    m_trail.spool(r);
    throw;
  } catch (const Error& e) {
    if (e.code() == Exit::unavailable || e.code() == Exit::temporary) {
      audit::Record r{audit::Kind::refusal, m_job, "failed", "db_unavailable",
                      std::nullopt,         "{}",  "{}"};
      m_trail.spool(r);
    }
    throw;
  }
  log::event(log::Level::info, "db.connected",
             {{"endpoint", m_session->endpoint()}, {"tls", m_session->tls_description()}});
  return *m_session;
}

db::Session& Context::ready_db() {
  db::Session& s = db();
  if (!m_ready) {
    db::require_current_schema(s);
    size_t moved = m_trail.flush_spool(s);
    if (moved > 0) {
      log::event(log::Level::notice, "audit.spool_flushed", {{"records", moved}});
    }
    m_ready = true;
  }
  return s;
}

void Context::record(const audit::Record& r, audit::Closes closes) {
  // Only a record whose insert did not commit goes to the spool; once it committed, a failed
  // anchor append fails the run (Error io from anchor()) and the next append repairs the anchor.
  std::optional<audit::Stored> stored;
  bool committed = false;
  try {
    ready_db().transact([&](db::Transaction& tx) { stored = m_trail.append_in(tx, r, closes); });
    committed = true;
  } catch (const Error& e) {
    log::event(log::Level::warning, "audit.db_write_failed", {{"error", e.what()}});
    m_trail.spool(r, closes, stored ? stored->hash : std::string());
  }
  if (committed) {
    m_trail.anchor(*stored);
  }
}

} // namespace lethe
