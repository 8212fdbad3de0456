#include "worker/db/store/evidence.hpp"

#include "worker/db/clock.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/util/error.hpp"

namespace lethe::db::store {
namespace {

std::string utc(const std::string& expr) {
  return utc_text(expr);
}

std::string day(const std::string& expr) {
  return "to_char((" + expr + ") AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
}

// One JSON value computed by the server ($1, $2: the period).
util::Json json_of(Session& s, const std::string& sql, const Period& p, const std::string& what) {
  return util::parse_json(s.exec("SELECT (" + sql + ")::text", {p.from, p.to}).text(0, 0), what);
}

// Met, missed or still open: `done` against `deadline`, as of now.
std::string clock_state(const std::string& done, const std::string& deadline) {
  return "CASE WHEN " + done + " IS NOT NULL THEN CASE WHEN " + done + " <= " + deadline +
         " THEN 'met' ELSE 'missed' END WHEN now() > " + deadline +
         " THEN 'missed' ELSE 'open' END";
}

// The verify runs of `job` in the period ($1, $2), those that failed (an alarm) and those that
// did not check everything (their counts' `incomplete` is above 0): JSON object members.
std::string verify_counts(const std::string& job, const std::string& incomplete) {
  const std::string in = " FROM lethe.audit_log WHERE job = '" + job +
                         "' AND recorded_at >= $1::timestamptz AND recorded_at < $2::timestamptz";
  return "'verify_runs', (SELECT count(*)" + in + " AND kind IN ('run', 'alarm')), " +
         "'verify_failures', (SELECT count(*)" + in + " AND kind = 'alarm'), " +
         "'verify_incomplete', (SELECT count(*)" + in +
         " AND kind = 'run' AND coalesce((counts::jsonb ->> '" + incomplete +
         "')::bigint, 0) > 0), ";
}

} // namespace

void record_overdue_samples(Session& s, const std::vector<OverdueSample>& samples) {
  s.transact([&](Transaction& tx) {
    for (const OverdueSample& o : samples) {
      tx.exec("INSERT INTO lethe.overdue_samples (sampled_at, table_name, overdue, held, "
              "oldest_overdue_seconds) VALUES (now(), $1, $2, $3, nullif($4::float8, -1))",
              {o.table, std::to_string(o.overdue), std::to_string(o.held),
               o.oldest_overdue_s < 0 ? std::string("-1") : std::to_string(o.oldest_overdue_s)});
    }
  });
}

Period resolve_period(Session& s, const std::string& from, const std::string& to) {
  Period p;
  p.from = resolve_instant(s, from, "--from").iso;
  p.to = resolve_instant(s, to, "--to").iso;
  if (s.exec("SELECT $1::timestamptz < $2::timestamptz", {p.from, p.to}).text(0, 0) != "t") {
    throw Error(Exit::usage, "--from " + p.from + " is not before --to " + p.to,
                "give a period such as --from 2026-01-01 --to 2026-04-01");
  }
  p.generated_at = s.exec("SELECT " + utc("now()")).text(0, 0);
  return p;
}

util::Json copies_by_table(Session& s, const settings::Settings& set) {
  util::Json out = util::Json::array();
  for (const settings::PiiTable* t : set.pii_tables()) {
    // The catalogs' row counts name tables schema-qualified (backups) or as the map wrote them.
    Rows r = s.exec(
        "WITH q AS (SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN "
        "pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)) "
        "SELECT (SELECT count(*) FILTER (WHERE has_pii) FROM " +
            state_view(t->table) +
            "), (SELECT coalesce(sum(coalesce((row_counts::jsonb ->> $1)::bigint, "
            "(row_counts::jsonb ->> q.name)::bigint, 0)), 0) FROM lethe.archives, q WHERE state "
            "= 'spooled'), (SELECT coalesce(sum(coalesce((row_counts::jsonb ->> $1)::bigint, "
            "(row_counts::jsonb ->> q.name)::bigint, 0)), 0) FROM lethe.archives, q WHERE state "
            "= 'cold'), (SELECT count(*) FROM lethe.archives WHERE state <> 'destroyed'), "
            "(SELECT coalesce(sum((row_counts::jsonb ->> q.name)::bigint), 0) FROM lethe.backups, "
            "q WHERE state <> 'destroyed'), (SELECT count(*) FROM lethe.backups WHERE state <> "
            "'destroyed')",
        {t->table});
    out.push_back({{"table", t->table},
                   {"live_rows_with_pii", r.integer(0, 0)},
                   {"spooled_archive_rows", r.integer(0, 1)},
                   {"cold_archive_rows", r.integer(0, 2)},
                   {"archives", r.integer(0, 3)},
                   {"backup_rows", r.integer(0, 4)},
                   {"backups", r.integer(0, 5)}});
  }
  return out;
}

util::Json privileges(Session& s, const settings::Settings& set) {
  util::Json out = util::Json::object();
  out["superusers"] = util::parse_json(
      s.exec("SELECT coalesce(jsonb_agg(rolname ORDER BY rolname), '[]')::text FROM pg_roles "
             "WHERE rolsuper AND rolcanlogin")
          .text(0, 0),
      "superusers");
  util::Json tables = util::Json::array();
  for (const settings::PiiTable* t : set.pii_tables()) {
    std::vector<Value> cols;
    for (const settings::PiiColumn& c : t->columns) {
      cols.emplace_back(c.name);
    }
    Rows r = s.exec(
        "SELECT (SELECT coalesce(jsonb_object_agg(c.col, jsonb_build_object("
        "'select', (SELECT coalesce(jsonb_agg(r.rolname ORDER BY r.rolname), '[]') FROM pg_roles r "
        "WHERE r.rolcanlogin AND NOT r.rolsuper AND has_column_privilege(r.oid, to_regclass($1), "
        "c.col, 'SELECT')), "
        "'update', (SELECT coalesce(jsonb_agg(r.rolname ORDER BY r.rolname), '[]') FROM pg_roles r "
        "WHERE r.rolcanlogin AND NOT r.rolsuper AND has_column_privilege(r.oid, to_regclass($1), "
        "c.col, 'UPDATE')))), '{}') FROM unnest($2::text[]) c(col))::text, "
        "(SELECT coalesce(jsonb_agg(r.rolname ORDER BY r.rolname), '[]') FROM pg_roles r WHERE "
        "r.rolcanlogin AND NOT r.rolsuper AND (has_table_privilege(r.oid, to_regclass($1), "
        "'DELETE') OR has_table_privilege(r.oid, to_regclass($1), 'TRUNCATE')))::text",
        {t->table, array_literal(cols)});
    tables.push_back({{"table", t->table},
                      {"columns", util::parse_json(r.text(0, 0), "column privileges")},
                      {"delete", util::parse_json(r.text(0, 1), "delete privileges")}});
  }
  out["tables"] = tables;
  return out;
}

util::Json purge_by_day(Session& s, const Period& p) {
  return json_of(
      s,
      "SELECT coalesce(jsonb_agg(jsonb_build_object('day', d, 'runs', runs, 'failed_runs', "
      "failed, 'interrupted_runs', interrupted, 'orders', orders, 'rows', rows) ORDER BY d), "
      "'[]') FROM (SELECT " +
          day("finished_at") +
          " AS d, count(*) FILTER (WHERE outcome = 'done') AS runs, count(*) FILTER (WHERE "
          "outcome IN ('failed', 'refused', 'abandoned')) AS failed, count(*) FILTER (WHERE "
          "outcome = 'interrupted') AS interrupted, coalesce(sum((counts::jsonb ->> "
          "'orders_done')::bigint), 0) AS orders, coalesce(sum((counts::jsonb ->> "
          "'rows_sanitized')::bigint), 0) AS rows FROM lethe.job_runs WHERE job = 'purge' AND "
          "finished_at >= $1::timestamptz AND finished_at < $2::timestamptz GROUP BY 1) x",
      p, "purge by day");
}

util::Json gaps_between_successes(Session& s, const Period& p, const std::string& job,
                                  double hours) {
  // The instants that bound the gaps: the period's start (or the job's first success, if later),
  // each success in the period, and its end (or now). A gap longer than `hours` is one; the
  // first day of an install and today's run still to come are not.
  return util::parse_json(
      s.exec("WITH ok AS (SELECT finished_at AS t FROM lethe.job_runs WHERE job = $3 AND outcome "
             "= 'done'), b AS (SELECT greatest($1::timestamptz, (SELECT min(t) FROM ok)) AS lo, "
             "least($2::timestamptz, now()) AS hi), pts AS (SELECT ok.t FROM ok, b WHERE ok.t > "
             "b.lo AND ok.t < b.hi UNION ALL SELECT lo FROM b UNION ALL SELECT hi FROM b), gaps "
             "AS (SELECT t, lead(t) OVER (ORDER BY t) AS nxt FROM pts) SELECT "
             "coalesce(jsonb_agg(jsonb_build_object('from', " +
                 utc("t") + ", 'to', " + utc("nxt") +
                 ", 'hours', round((extract(epoch FROM nxt - t) / 3600)::numeric, 1)) ORDER BY "
                 "t), '[]')::text FROM gaps, b WHERE b.lo < b.hi AND nxt IS NOT NULL AND nxt - t "
                 "> $4::float8 * interval '1 hour'",
             {p.from, p.to, job, std::to_string(hours)})
          .text(0, 0),
      "gaps between successes");
}

util::Json overdue_by_day(Session& s, const Period& p) {
  return json_of(
      s,
      "SELECT coalesce(jsonb_agg(jsonb_build_object('day', d, 'samples', n, 'max_overdue', mo, "
      "'max_held', mh, 'oldest_overdue_seconds', round(oa)) ORDER BY d), '[]') FROM (SELECT " +
          day("sampled_at") +
          " AS d, count(*) AS n, max(o) AS mo, max(h) AS mh, max(oa) AS oa FROM (SELECT "
          "sampled_at, sum(overdue) AS o, sum(held) AS h, max(oldest_overdue_seconds) AS oa FROM "
          "lethe.overdue_samples WHERE sampled_at >= $1::timestamptz "
          "AND sampled_at < $2::timestamptz GROUP BY sampled_at) per_sample GROUP BY 1) x",
      p, "overdue by day");
}

util::Json archives_in(Session& s, const Period& p) {
  return json_of(
      s,
      "jsonb_build_object("
      "'written', (SELECT count(*) FROM lethe.archives WHERE created_at >= $1::timestamptz AND "
      "created_at < $2::timestamptz), "
      "'orders_written', (SELECT coalesce(sum(orders), 0) FROM lethe.archives WHERE created_at >= "
      "$1::timestamptz AND created_at < $2::timestamptz), "
      "'bytes_written', (SELECT coalesce(sum(size_bytes), 0) FROM lethe.archives WHERE created_at "
      ">= $1::timestamptz AND created_at < $2::timestamptz), " +
          verify_counts("archive verify", "not_reached") +
          "'destroyed', (SELECT count(*) FROM lethe.archives WHERE destroyed_at >= $1::timestamptz "
          "AND destroyed_at < $2::timestamptz), "
          "'spooled_now', (SELECT count(*) FROM lethe.archives WHERE state = 'spooled'), "
          "'cold_now', (SELECT count(*) FROM lethe.archives WHERE state = 'cold'))",
      p, "archives");
}

util::Json requests_in(Session& s, const Period& p) {
  const std::string live = "notice_at + interval '72 hours'";
  const std::string all = "notice_at + interval '90 days'";
  // A request cancelled after a deadline still missed it.
  const std::string cancelled_live = "state = 'cancelled' AND cancelled_at <= " + live;
  const std::string cancelled_all = "state = 'cancelled' AND cancelled_at <= " + all;
  return json_of(
      s,
      "SELECT coalesce(jsonb_agg(jsonb_build_object('request_id', request_id, 'amazon_ref', "
      "amazon_ref, 'action', action, 'scope', scope_kind, 'state', state, 'orders', "
      "orders_resolved, 'notice_at', " +
          utc("notice_at") + ", 'live_deadline', " + utc(live) + ", 'live_erased_at', " +
          utc("live_erased_at") + ", 'live_clock', CASE WHEN " + cancelled_live +
          " THEN 'cancelled' ELSE " + clock_state("live_erased_at", live) +
          " END, 'copies_deadline', " + utc(all) + ", 'completed_at', " + utc("completed_at") +
          ", 'copies_clock', CASE WHEN " + cancelled_all + " THEN 'cancelled' ELSE " +
          clock_state("completed_at", all) +
          " END) ORDER BY notice_at, request_id), '[]') FROM lethe.requests WHERE notice_at < "
          "$2::timestamptz AND (coalesce(completed_at, cancelled_at) IS NULL OR "
          "coalesce(completed_at, cancelled_at) >= $1::timestamptz)",
      p, "requests");
}

util::Json backups_in(Session& s, const Period& p) {
  return json_of(
      s,
      "jsonb_build_object("
      "'written', (SELECT count(*) FROM lethe.backups WHERE created_at >= $1::timestamptz AND "
      "created_at < $2::timestamptz), "
      "'bytes_written', (SELECT coalesce(sum(size_bytes), 0) FROM lethe.backups WHERE created_at "
      ">= $1::timestamptz AND created_at < $2::timestamptz), " +
          verify_counts("backup verify", "skipped") +
          "'destroyed', (SELECT count(*) FROM lethe.backups WHERE destroyed_at >= $1::timestamptz "
          "AND destroyed_at < $2::timestamptz), "
          "'kept_now', (SELECT count(*) FROM lethe.backups WHERE state <> 'destroyed'))",
      p, "backups");
}

util::Json drills_in(Session& s, const Period& p) {
  return json_of(s,
                 "SELECT coalesce(jsonb_agg(jsonb_build_object('drill_id', drill_id, "
                 "'finished_at', " +
                     utc("finished_at") +
                     ", 'backup_id', backup_id, 'result', result, 'rto_seconds', rto_seconds, "
                     "'failed_check', failed_check) ORDER BY finished_at), '[]') FROM "
                     "lethe.drills WHERE kind = 'drill' AND finished_at >= $1::timestamptz AND "
                     "finished_at < $2::timestamptz",
                 p, "drills");
}

util::Json incidents_in(Session& s, const Period& p) {
  // The notice as stated (--at) and as recorded: stated in time but recorded after the
  // deadline, or declared not owed only after it, is shown as such.
  const std::string recorded = "(SELECT recorded_at FROM lethe.audit_log WHERE seq = "
                               "i.notified_seq)";
  return json_of(
      s,
      "SELECT coalesce(jsonb_agg(jsonb_build_object('incident_id', incident_id, 'kind', kind, "
      "'state', state, 'alarms', alarms, 'opened_at', " +
          utc("opened_at") + ", 'notify_by', " + utc("notify_by") + ", 'notified_at', " +
          utc("notified_at") + ", 'notice_recorded_at', " + utc(recorded) +
          ", 'notify_channel', notify_channel, 'notice', CASE WHEN notice_not_required THEN "
          "CASE WHEN closed_at <= notify_by THEN 'not_owed' ELSE 'not_owed_after_deadline' END "
          "WHEN notified_at <= notify_by AND " +
          recorded + " > notify_by THEN 'met_recorded_late' ELSE " +
          clock_state("notified_at", "notify_by") + " END, 'closed_at', " + utc("closed_at") +
          ", 'notes', (SELECT count(*) FROM lethe.incident_notes n WHERE n.incident_id = "
          "i.incident_id)) ORDER BY incident_id), '[]') FROM lethe.incidents i WHERE opened_at < "
          "$2::timestamptz AND (closed_at IS NULL OR closed_at >= $1::timestamptz)",
      p, "incidents");
}

util::Json audit_in(Session& s, const Period& p) {
  return json_of(
      s,
      "jsonb_build_object("
      "'records_total', (SELECT count(*) FROM lethe.audit_log), "
      "'records_in_period', (SELECT count(*) FROM lethe.audit_log WHERE recorded_at >= "
      "$1::timestamptz AND recorded_at < $2::timestamptz), "
      "'first_record_at', (SELECT " +
          utc("min(recorded_at)") +
          " FROM lethe.audit_log), "
          "'by_kind', (SELECT coalesce(jsonb_object_agg(kind, n), '{}') FROM (SELECT kind, "
          "count(*) AS n FROM lethe.audit_log WHERE recorded_at >= $1::timestamptz AND "
          "recorded_at < $2::timestamptz GROUP BY kind) k), "
          "'alarms', (SELECT coalesce(jsonb_agg(jsonb_build_object('what', job || ': ' || "
          "exit_reason, 'count', n) ORDER BY job, exit_reason), '[]') FROM (SELECT job, "
          "exit_reason, count(*) AS n FROM lethe.audit_log WHERE kind = 'alarm' AND recorded_at "
          ">= $1::timestamptz AND recorded_at < $2::timestamptz GROUP BY job, exit_reason) a), "
          "'refusals', (SELECT coalesce(jsonb_agg(jsonb_build_object('what', job || ': ' || "
          "exit_reason, 'count', n) ORDER BY job, exit_reason), '[]') FROM (SELECT job, "
          "exit_reason, count(*) AS n FROM lethe.audit_log WHERE kind = 'refusal' AND "
          "recorded_at >= $1::timestamptz AND recorded_at < $2::timestamptz GROUP BY job, "
          "exit_reason) r), "
          "'operators', (SELECT coalesce(jsonb_agg(DISTINCT actor), '[]') FROM lethe.audit_log "
          "WHERE kind = 'manual' AND recorded_at >= $1::timestamptz AND recorded_at < "
          "$2::timestamptz))",
      p, "audit");
}

} // namespace lethe::db::store
