#include "worker/db/store/incidents.hpp"

#include "worker/db/clock.hpp"

namespace lethe::db::store {
namespace {

// Empty text for NULL: the rows' optional instants are empty strings.
std::string utc(const std::string& column) {
  return "coalesce(" + utc_text(column) + ", '')";
}

const std::string k_select =
    "SELECT incident_id, kind, state, " + utc("opened_at") + ", opened_seq, opened_by, " +
    utc("notify_by") + ", extract(epoch FROM notify_by - now()) / 3600, alarms, last_alarm_seq, " +
    utc("last_alarm_at") + ", " + utc("acked_at") + ", coalesce(acked_by, ''), " +
    utc("notified_at") + ", coalesce(notified_by, ''), coalesce(notify_channel, ''), " +
    utc("closed_at") + ", coalesce(closed_by, ''), notice_not_required FROM lethe.incidents";

std::vector<IncidentRow> rows_of(const Rows& r) {
  std::vector<IncidentRow> out;
  for (size_t i = 0; i < r.size(); ++i) {
    IncidentRow x;
    x.id = r.integer(i, 0);
    x.kind = r.text(i, 1);
    x.state = r.text(i, 2);
    x.opened_at = r.text(i, 3);
    x.opened_seq = r.integer(i, 4);
    x.opened_by = r.text(i, 5);
    x.notify_by = r.text(i, 6);
    x.notify_hours_left = std::stod(r.text(i, 7));
    x.alarms = r.integer(i, 8);
    x.last_alarm_seq = r.integer(i, 9);
    x.last_alarm_at = r.text(i, 10);
    x.acked_at = r.text(i, 11);
    x.acked_by = r.text(i, 12);
    x.notified_at = r.text(i, 13);
    x.notified_by = r.text(i, 14);
    x.notify_channel = r.text(i, 15);
    x.closed_at = r.text(i, 16);
    x.closed_by = r.text(i, 17);
    x.notice_not_required = r.text(i, 18) == "t";
    out.push_back(std::move(x));
  }
  return out;
}

} // namespace

std::vector<IncidentRow> incidents(Session& s, bool all) {
  return rows_of(
      s.exec(k_select + (all ? "" : " WHERE state <> 'closed'") + " ORDER BY incident_id DESC"));
}

std::optional<IncidentRow> find_incident(Session& s, long long id) {
  std::vector<IncidentRow> r =
      rows_of(s.exec(k_select + " WHERE incident_id = $1", {std::to_string(id)}));
  if (r.empty()) {
    return std::nullopt;
  }
  return r.front();
}

std::vector<IncidentNote> incident_notes(Session& s, long long id) {
  Rows r = s.exec("SELECT seq, " + utc("noted_at") +
                      ", noted_by, kind, note FROM lethe.incident_notes WHERE incident_id = $1 "
                      "ORDER BY seq",
                  {std::to_string(id)});
  std::vector<IncidentNote> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.integer(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4)});
  }
  return out;
}

long long apply_incident_change(Transaction& tx, long long seq) {
  return tx.exec("SELECT lethe.incident_change($1)", {std::to_string(seq)}).integer(0, 0);
}

} // namespace lethe::db::store
