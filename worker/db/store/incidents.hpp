// Typed access to the incidents of schema 10 (lethe.incidents, lethe.incident_notes). The only
// place with SQL about these tables; jobs/incident and `lethe check` call these functions. An
// incident changes only through lethe.incident_change, which needs the change's audit record in
// the same transaction.
#pragma once

#include "worker/db/session.hpp"

#include <optional>
#include <string>
#include <vector>

namespace lethe::db::store {

struct IncidentRow {
  long long id = 0;
  std::string kind;      // "<job>: <reason>" of its alarm, or "manual: <type>"
  std::string state;     // open | acknowledged | closed
  std::string opened_at; // UTC, ISO 8601
  long long opened_seq = 0;
  std::string opened_by;
  std::string notify_by;
  double notify_hours_left = 0; // at the instant read (negative once passed)
  long long alarms = 0;
  long long last_alarm_seq = 0;
  std::string last_alarm_at;
  std::string acked_at, acked_by;
  std::string notified_at, notified_by, notify_channel;
  std::string closed_at, closed_by;
  bool notice_not_required = false;
  // Open, not notified, its 24 hours past.
  bool notify_overdue() const {
    return state != "closed" && notified_at.empty() && notify_hours_left < 0;
  }
};

struct IncidentNote {
  long long seq = 0;
  std::string noted_at;
  std::string noted_by;
  std::string kind; // investigation | remediation
  std::string note;
};

// Incidents, newest first; closed ones only with `all`.
std::vector<IncidentRow> incidents(Session& s, bool all);
std::optional<IncidentRow> find_incident(Session& s, long long id);
std::vector<IncidentNote> incident_notes(Session& s, long long id);
// Applies the change audit record `seq` (written in `tx`) states; returns the incident's id.
long long apply_incident_change(Transaction& tx, long long seq);

} // namespace lethe::db::store
