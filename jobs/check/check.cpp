#include "jobs/check/check.hpp"

#include "worker/db/clock.hpp"
#include "worker/db/drift.hpp"
#include "worker/db/store/evidence.hpp"
#include "worker/db/store/incidents.hpp"
#include "worker/db/store/requests.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/metrics.hpp"
#include "worker/sanitize/overdue.hpp"
#include "worker/util/json.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

namespace lethe::jobs::check {
namespace {

std::string format_age(double seconds) {
  if (seconds < 0) {
    return "-";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fd", seconds / 86400.0);
  return buf;
}

// A deletion request that needs attention: a deadline it has not met is past, or within
// requests.warn_hours.
struct RequestAlert {
  long long id = 0;
  std::string ref;
  std::string what; // "live data" (72 hours) or "every copy" (90 days)
  std::string deadline;
  double hours_left = 0;
};

std::vector<RequestAlert> request_alerts(db::Session& s, const settings::Settings& set,
                                         const std::string& as_of, long long& open) {
  std::vector<RequestAlert> out;
  open = 0;
  for (const db::store::RequestRow& r : db::store::requests(s, as_of)) {
    bool live = r.state == "received" || r.state == "executing";
    if (!live && r.state != "live_erased") {
      continue;
    }
    ++open;
    double left = live ? r.live_hours_left : r.copies_hours_left;
    if (left < static_cast<double>(set.requests.warn_hours)) {
      out.push_back({r.id, r.amazon_ref, live ? "live data" : "every copy",
                     live ? r.live_deadline : r.copies_deadline, left});
    } else if (!live && r.live_hours_left < 24) {
      // Erased, but dead row versions of it are left in tables nobody has vacuumed since, with
      // less than a day to the 72 hours.
      std::vector<std::string> tables;
      util::Json counts = util::parse_json(r.counts, "lethe.requests.counts");
      for (const auto& [table, n] : counts["rows_erased_by_table"].items()) {
        tables.push_back(table);
      }
      std::vector<std::string> stale;
      s.transact([&](db::Transaction& tx) {
        stale = db::store::tables_not_vacuumed_since_erase(tx, tables, r.id);
      });
      if (!stale.empty()) {
        std::string what = "dead row versions (VACUUM";
        for (const std::string& t : stale) {
          what += " " + t;
        }
        out.push_back({r.id, r.amazon_ref, what + ")", r.live_deadline, r.live_hours_left});
      }
    }
  }
  return out;
}

// A breach the check finds is an alarm record, which opens an incident (C15, C18): PII past its
// deadline for longer than a purge cycle (drill.overdue_grace_hours, at least 26 h), a request
// past a deadline, schema drift where PII could hide. Once per incident: while one of its kind
// is open and not yet notified, the hourly check adds no record.
void record_breaches(Context& ctx, const sanitize::Overdue& res,
                     const std::vector<RequestAlert>& alerts, size_t drift_alarms,
                     const std::vector<db::store::IncidentRow>& incidents) {
  auto open = [&](const std::string& reason) {
    // As the trigger merges: into an incident Amazon was not yet told of.
    return std::any_of(incidents.begin(), incidents.end(), [&](const auto& i) {
      return i.kind == "check: " + reason && i.notified_at.empty();
    });
  };
  auto alarm = [&](const std::string& reason, const util::Json& counts) {
    if (!open(reason)) {
      ctx.record(audit::Record{audit::Kind::alarm, "check", "failed", reason, std::nullopt,
                               util::dump(counts), "{}"});
    }
  };
  double grace = std::max(static_cast<double>(ctx.settings().drill.overdue_grace_hours),
                          sanitize::k_purge_cycle_hours) *
                 3600.0;
  double oldest = -1;
  long long rows = 0;
  for (const sanitize::TableOverdue& t : res.tables) {
    oldest = std::max(oldest, t.oldest_overdue_s);
    rows += t.overdue;
  }
  if (oldest > grace) {
    alarm("pii_overdue", {{"rows_overdue", rows}, {"oldest_overdue_seconds", oldest}});
  }
  long long missed = std::count_if(alerts.begin(), alerts.end(),
                                   [](const RequestAlert& a) { return a.hours_left < 0; });
  if (missed > 0) {
    alarm("request_deadline_missed", {{"requests", missed}});
  }
  if (drift_alarms > 0) {
    alarm("schema_drift", {{"items", drift_alarms}});
  }
}

// lethe-check.prom: what only a role that reads the state views can count (C15).
void write_check_metrics(Context& ctx, const sanitize::Overdue& res, size_t drift_alarms) {
  const std::filesystem::path& dir = ctx.settings().metrics.textfile_dir;
  if (dir.empty()) {
    return;
  }
  try {
    std::vector<runtime::Sample> out;
    for (const sanitize::TableOverdue& t : res.tables) {
      out.push_back({"lethe_pii_overdue_rows", {{"table", t.table}}, double(t.overdue)});
      out.push_back({"lethe_pii_held_rows", {{"table", t.table}}, double(t.held)});
      if (t.oldest_overdue_s >= 0) {
        out.push_back(
            {"lethe_pii_overdue_oldest_age_seconds", {{"table", t.table}}, t.oldest_overdue_s});
      }
    }
    // The root's held rows are its held orders.
    out.push_back({"lethe_held_orders", {}, res.tables.empty() ? 0.0 : double(res.tables[0].held)});
    out.push_back({"lethe_schema_drift_alarms", {}, double(drift_alarms)});
    db::Rows at = ctx.ready_db().exec("SELECT extract(epoch FROM $1::timestamptz)", {res.as_of});
    out.push_back({"lethe_check_timestamp_seconds", {}, std::stod(at.text(0, 0))});
    runtime::write_textfile(dir, "lethe-check.prom", runtime::exposition(out));
  } catch (const Error& e) {
    log::event(log::Level::warning, "metrics.not_written",
               {{"file", (dir / "lethe-check.prom").string()}, {"error", e.what()}});
  }
}

} // namespace

int run_check(Context& ctx, const CheckOptions& opts) {
  db::Session& session = ctx.ready_db();
  std::string as_of = db::resolve_instant(session, opts.as_of).iso;
  // Each PII-map table is a scan: the root's and the others' run on two connections at once.
  std::unique_ptr<db::Session> second = db::connect(ctx.settings());
  sanitize::Overdue res = sanitize::overdue_pii(session, ctx.settings(), as_of, second.get());
  long long overdue = res.overdue_total();
  long long held = res.held_total();
  long long open_requests = 0;
  std::vector<RequestAlert> alerts = request_alerts(session, ctx.settings(), as_of, open_requests);
  std::vector<db::DriftItem> drift = db::current_drift(session, ctx.settings());
  size_t drift_alarms = db::alarm_count(drift);
  std::vector<db::store::IncidentRow> incidents = db::store::incidents(session, false);
  long long notify_overdue = std::count_if(incidents.begin(), incidents.end(),
                                           [](const auto& i) { return i.notify_overdue(); });
  bool ok = overdue == 0 && alerts.empty() && drift_alarms == 0 && notify_overdue == 0;
  if (opts.as_of.empty()) {
    // Counted as of now: kept for the report's PII-past-its-deadline-over-time, and written for
    // the metrics.
    std::vector<db::store::OverdueSample> samples;
    for (const sanitize::TableOverdue& t : res.tables) {
      samples.push_back({t.table, t.overdue, t.held, t.oldest_overdue_s});
    }
    db::store::record_overdue_samples(session, samples);
    record_breaches(ctx, res, alerts, drift_alarms, incidents);
    write_check_metrics(ctx, res, drift_alarms);
  }
  if (opts.json) {
    nlohmann::ordered_json tables = nlohmann::ordered_json::array();
    for (const sanitize::TableOverdue& t : res.tables) {
      tables.push_back({{"table", t.table},
                        {"overdue", t.overdue},
                        {"held_awaiting_archive", t.held},
                        {"oldest_overdue_seconds", t.oldest_overdue_s}});
    }
    nlohmann::ordered_json out = {
        {"as_of", res.as_of}, {"retention_days", ctx.settings().retention.days},
        {"overdue", overdue}, {"held_awaiting_archive", held},
        {"ok", ok},           {"tables", tables}};
    nlohmann::ordered_json req = nlohmann::ordered_json::array();
    for (const RequestAlert& a : alerts) {
      req.push_back({{"request_id", a.id},
                     {"amazon_ref", a.ref},
                     {"deadline", a.what},
                     {"due_at", a.deadline},
                     {"hours_left", a.hours_left},
                     {"overdue", a.hours_left < 0}});
    }
    out["requests_open"] = open_requests;
    out["requests_needing_attention"] = req;
    out["schema_drift_alarms"] = drift_alarms;
    out["schema_drift"] = db::to_json(drift);
    out["incidents_open"] = incidents.size();
    out["incidents_notify_overdue"] = notify_overdue;
    std::cout << util::dump(out) << "\n";
  } else {
    std::printf("PII past its deadline as of %s (retention %ld days after shipment)\n",
                res.as_of.c_str(), ctx.settings().retention.days);
    std::printf("  %-36s %10s %10s %12s\n", "table", "overdue", "held", "oldest");
    for (const sanitize::TableOverdue& t : res.tables) {
      std::printf("  %-36s %10lld %10lld %12s\n", t.table.c_str(), t.overdue, t.held,
                  format_age(t.oldest_overdue_s).c_str());
    }
    std::printf("deletion requests open: %lld (warning %ld hours before a deadline)\n",
                open_requests, ctx.settings().requests.warn_hours);
    for (const RequestAlert& a : alerts) {
      std::printf("  request %lld (%s): %s due %s, %s %.1f h\n", a.id, a.ref.c_str(),
                  a.what.c_str(), a.deadline.c_str(), a.hours_left < 0 ? "OVERDUE by" : "in",
                  a.hours_left < 0 ? -a.hours_left : a.hours_left);
    }
    std::printf("%s", db::describe(drift).c_str());
    std::printf("incidents open: %zu, notice to Amazon overdue: %lld\n", incidents.size(),
                notify_overdue);
    for (const db::store::IncidentRow& i : incidents) {
      if (i.notify_overdue()) {
        std::printf("  incident %lld (%s): notice was due %s\n", i.id, i.kind.c_str(),
                    i.notify_by.c_str());
      }
    }
    if (ok) {
      std::printf("result: nothing overdue\n");
    } else {
      if (overdue > 0) {
        std::printf("result: PII overdue (C1) - run `lethe purge`\n");
      }
      if (!alerts.empty()) {
        std::printf("result: deletion requests need attention (C5, C6) - run `lethe request run` "
                    "(dead row versions: VACUUM the tables as their owner) and see `lethe "
                    "request show ID`\n");
      }
      if (notify_overdue > 0) {
        std::printf("result: an incident's 24-hour notice to Amazon is overdue (C18) - tell "
                    "Amazon, then `lethe incident notify ID --channel TEXT`\n");
      }
      if (drift_alarms > 0) {
        std::printf("result: the schema changed where the PII map does not look (C1) - map, "
                    "declare not_pii, or approve each item above\n");
      }
    }
  }
  log::event(ok ? log::Level::info : log::Level::warning, "check.done",
             {{"overdue", overdue},
              {"held", held},
              {"requests_needing_attention", alerts.size()},
              {"schema_drift_alarms", drift_alarms},
              {"incidents_notify_overdue", notify_overdue},
              {"as_of", res.as_of}});
  return ok ? 0 : 1;
}

} // namespace lethe::jobs::check
