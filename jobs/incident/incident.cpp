#include "jobs/incident/incident.hpp"

#include "worker/db/clock.hpp"
#include "worker/db/pii_text.hpp"
#include "worker/db/store/incidents.hpp"
#include "worker/log/log.hpp"
#include "worker/util/json.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::jobs::incident {
namespace {

namespace store = db::store;

std::string id_text(long long id) {
  return std::to_string(id);
}

void require_operator(const std::string& what, const std::string& operator_name) {
  if (operator_name.empty()) {
    throw Error(Exit::usage, "`lethe incident " + what + "` records who did it: --operator NAME",
                "name yourself: every change of an incident is audited with its operator");
  }
}

void require_text(const std::string& what, const std::string& option, const std::string& text) {
  if (text.empty()) {
    throw Error(Exit::usage, "`lethe incident " + what + "` needs " + option,
                "see `lethe incident " + what + " --help`");
  }
}

// Refuses free text that quotes a value of a PII column (names the columns, never the value).
void refuse_pii(Context& ctx, const std::string& option, const std::string& text) {
  std::vector<std::string> cols;
  try {
    cols = db::pii_columns_quoted_in(ctx.ready_db(), ctx.settings(), text);
  } catch (const Error& e) {
    if (e.code() != Exit::permission) {
      throw;
    }
    throw Error(Exit::permission,
                "cannot check " + option + " for PII: this role may not read the PII columns",
                "run incident commands with a configuration whose role may read them (the "
                "owner's, as for `lethe config approve`)");
  }
  if (!cols.empty()) {
    std::string names;
    for (const std::string& c : cols) {
      names += (names.empty() ? "" : ", ") + c;
    }
    ctx.record(audit::Record{audit::Kind::refusal, "incident", "refused", "pii_in_text",
                             std::nullopt, "{}", util::dump({{"columns", cols}})});
    throw Error(Exit::data, option + " quotes a value held in " + names + "; nothing was recorded",
                "describe the incident without buyer data: name orders by their id, people by "
                "their role");
  }
}

store::IncidentRow open_incident(Context& ctx, long long id) {
  std::optional<store::IncidentRow> row = store::find_incident(ctx.ready_db(), id);
  if (!row) {
    throw Error(Exit::usage, "no incident " + id_text(id), "see `lethe incident list --all`");
  }
  if (row->state == "closed") {
    throw Error(Exit::data, "incident " + id_text(id) + " is closed",
                "a closed incident does not change; open a new one with `lethe incident open`");
  }
  return *row;
}

// Writes the change's audit record and applies it in one transaction; returns the incident id.
long long apply(Context& ctx, const std::string& change, util::Json details) {
  long long id = 0;
  std::optional<audit::Stored> stored;
  ctx.ready_db().transact([&](db::Transaction& tx) {
    stored =
        ctx.trail().append_in(tx, audit::Record{audit::Kind::manual, "incident", "done", change,
                                                std::nullopt, "{}", util::dump(details)});
    id = store::apply_incident_change(tx, stored->seq);
  });
  ctx.trail().anchor(*stored);
  log::event(log::Level::notice, "incident.changed", {{"incident_id", id}, {"change", change}});
  return id;
}

util::Json to_json(const store::IncidentRow& r) {
  return {{"incident_id", r.id},
          {"kind", r.kind},
          {"state", r.state},
          {"opened_at", r.opened_at},
          {"opened_seq", r.opened_seq},
          {"opened_by", r.opened_by},
          {"alarms", r.alarms},
          {"last_alarm_seq", r.last_alarm_seq},
          {"notify_by", r.notify_by},
          {"notify_hours_left",
           r.notified_at.empty() ? util::Json(r.notify_hours_left) : util::Json(nullptr)},
          {"notify_overdue", r.notify_overdue()},
          {"acked_at", r.acked_at},
          {"acked_by", r.acked_by},
          {"notified_at", r.notified_at},
          {"notified_by", r.notified_by},
          {"notify_channel", r.notify_channel},
          {"closed_at", r.closed_at},
          {"closed_by", r.closed_by},
          {"notice_not_required", r.notice_not_required}};
}

std::string notice_text(const store::IncidentRow& r) {
  if (!r.notified_at.empty()) {
    return "notified " + r.notified_at;
  }
  if (r.state == "closed") {
    return "closed without notice";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf,
                r.notify_hours_left < 0 ? "notice OVERDUE by %.1f h" : "notice due in %.1f h",
                r.notify_hours_left < 0 ? -r.notify_hours_left : r.notify_hours_left);
  return buf;
}

} // namespace

int run_list(Context& ctx, bool all, bool json) {
  std::vector<store::IncidentRow> rows = store::incidents(ctx.ready_db(), all);
  if (json) {
    for (const store::IncidentRow& r : rows) {
      std::cout << util::dump(to_json(r)) << "\n";
    }
    return 0;
  }
  if (rows.empty()) {
    std::cout << (all ? "no incidents\n" : "no open incidents\n");
    return 0;
  }
  std::printf("%6s  %-12s  %-20s  %6s  %-28s  %s\n", "id", "state", "opened", "alarms", "notice",
              "kind");
  for (const store::IncidentRow& r : rows) {
    std::printf("%6lld  %-12s  %-20s  %6lld  %-28s  %s\n", r.id, r.state.c_str(),
                r.opened_at.c_str(), r.alarms, notice_text(r).c_str(), r.kind.c_str());
  }
  return 0;
}

int run_show(Context& ctx, long long id, bool json) {
  db::Session& s = ctx.ready_db();
  std::optional<store::IncidentRow> row = store::find_incident(s, id);
  if (!row) {
    throw Error(Exit::usage, "no incident " + id_text(id), "see `lethe incident list --all`");
  }
  std::vector<store::IncidentNote> notes = store::incident_notes(s, id);
  if (json) {
    util::Json o = to_json(*row);
    util::Json n = util::Json::array();
    for (const store::IncidentNote& x : notes) {
      n.push_back({{"seq", x.seq},
                   {"noted_at", x.noted_at},
                   {"noted_by", x.noted_by},
                   {"kind", x.kind},
                   {"note", x.note}});
    }
    o["notes"] = n;
    std::cout << util::dump(o) << "\n";
    return 0;
  }
  const store::IncidentRow& r = *row;
  std::cout << "incident " << r.id << " (" << r.kind << "): " << r.state << "\n"
            << "  opened    " << r.opened_at << " by " << r.opened_by << " (audit record "
            << r.opened_seq << ")\n"
            << "  alarms    " << r.alarms << ", the last at " << r.last_alarm_at << " (record "
            << r.last_alarm_seq << ")\n"
            << "  notice    to Amazon by " << r.notify_by << ": " << notice_text(r);
  if (!r.notified_at.empty()) {
    std::cout << " by " << r.notified_by << " via " << r.notify_channel;
  }
  std::cout << "\n";
  if (!r.acked_at.empty()) {
    std::cout << "  acknowledged " << r.acked_at << " by " << r.acked_by << "\n";
  }
  for (const store::IncidentNote& x : notes) {
    std::cout << "  " << x.kind << " note " << x.noted_at << " by " << x.noted_by << ": " << x.note
              << "\n";
  }
  if (!r.closed_at.empty()) {
    std::cout << "  closed    " << r.closed_at << " by " << r.closed_by << "\n";
  }
  return 0;
}

int run_open(Context& ctx, const Change& c) {
  require_operator("open", c.operator_name);
  require_text("open", "--type WORD", c.type);
  require_text("open", "--reason TEXT", c.text);
  if (c.type.size() > 40 ||
      c.type.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
    throw Error(Exit::usage, "--type is one word of lowercase letters, digits and _",
                "e.g. unauthorized_access, lost_device, data_exposure");
  }
  refuse_pii(ctx, "--reason", c.text);
  long long id = apply(ctx, "open", {{"type", c.type}, {"reason", c.text}});
  std::cout << "incident " << id << " opened (manual: " << c.type
            << "); Amazon must be told within 24 hours: record it with `lethe incident notify "
            << id << " --channel TEXT`\n";
  return 0;
}

int run_ack(Context& ctx, const Change& c) {
  require_operator("ack", c.operator_name);
  store::IncidentRow r = open_incident(ctx, c.id);
  if (r.state != "open") {
    throw Error(Exit::data, "incident " + id_text(c.id) + " was acknowledged by " + r.acked_by,
                "see `lethe incident show " + id_text(c.id) + "`");
  }
  apply(ctx, "ack", {{"incident_id", c.id}});
  std::cout << "incident " << c.id << " acknowledged by " << c.operator_name << "\n";
  return 0;
}

int run_notify(Context& ctx, const Change& c) {
  require_operator("notify", c.operator_name);
  require_text("notify", "--channel TEXT", c.text);
  store::IncidentRow r = open_incident(ctx, c.id);
  if (!r.notified_at.empty()) {
    throw Error(Exit::data,
                "incident " + id_text(c.id) + ": the notice was recorded at " + r.notified_at,
                "a notice is recorded once; add what followed with `lethe incident note`");
  }
  db::Instant at = db::resolve_instant(ctx.ready_db(), c.at, "--at");
  if (at.future) {
    throw Error(Exit::usage, "--at " + at.iso + " is in the future",
                "give the time Amazon was told (default: now)");
  }
  if (at.iso.substr(0, 19) < r.opened_at.substr(0, 19)) {
    throw Error(Exit::usage,
                "--at " + at.iso + " is before the incident opened (" + r.opened_at + ")",
                "give the time Amazon was told about this incident");
  }
  refuse_pii(ctx, "--channel", c.text);
  apply(ctx, "notify", {{"incident_id", c.id}, {"channel", c.text}, {"notified_at", at.iso}});
  std::cout << "incident " << c.id << ": Amazon told at " << at.iso << " via " << c.text << "\n";
  return 0;
}

int run_note(Context& ctx, const Change& c) {
  require_operator("note", c.operator_name);
  require_text("note", "--text TEXT", c.text);
  open_incident(ctx, c.id);
  refuse_pii(ctx, "--text", c.text);
  const char* kind = c.remediation ? "remediation" : "investigation";
  apply(ctx, "note", {{"incident_id", c.id}, {"note_kind", kind}, {"note", c.text}});
  std::cout << "incident " << c.id << ": " << kind << " note recorded\n";
  return 0;
}

int run_close(Context& ctx, const Change& c) {
  require_operator("close", c.operator_name);
  require_text("close", "--reason TEXT", c.text);
  store::IncidentRow r = open_incident(ctx, c.id);
  if (r.notified_at.empty() && !c.no_notice_owed) {
    throw Error(Exit::data, "incident " + id_text(c.id) + " has no recorded notice to Amazon",
                "record it with `lethe incident notify " + id_text(c.id) +
                    " --channel TEXT`, or close with --no-notice-owed when no notice was owed "
                    "(recorded as your judgement)");
  }
  refuse_pii(ctx, "--reason", c.text);
  apply(
      ctx, "close",
      {{"incident_id", c.id}, {"reason", c.text}, {"notice_not_required", r.notified_at.empty()}});
  std::cout << "incident " << c.id << " closed"
            << (r.notified_at.empty() ? " (no notice owed, by " + c.operator_name + ")" : "")
            << "\n";
  return 0;
}

} // namespace lethe::jobs::incident
