#include "worker/db/store/backups.hpp"

namespace lethe::db::store {
namespace {

const char* const k_iso = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

std::string iso(const std::string& column) {
  return "to_char(" + column + " AT TIME ZONE 'UTC', " + k_iso + ")";
}

std::vector<BackupRow> select_backups(Session& s, const std::string& where,
                                      const Params& params = {}) {
  Rows r = s.exec(
      "SELECT backup_id, coalesce(run_id, 0), " + iso("snapshot_at") +
          ", path, size_bytes, sha256, manifest_path, manifest_bytes, "
          "manifest_sha256, " +
          iso("retention_until") + ", recipients, row_counts, evidence_seq, state, coalesce(" +
          iso("destroyed_at") + ", ''), coalesce(destroyed_by, '') FROM lethe.backups WHERE " +
          where + " ORDER BY snapshot_at, backup_id",
      params);
  std::vector<BackupRow> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.text(i, 0), r.integer(i, 1), r.text(i, 2), r.text(i, 3),
                   std::stoull(r.text(i, 4)), r.text(i, 5), r.text(i, 6), std::stoull(r.text(i, 7)),
                   r.text(i, 8), r.text(i, 9), r.text(i, 10), r.text(i, 11), r.integer(i, 12),
                   r.text(i, 13), r.text(i, 14), r.text(i, 15)});
  }
  return out;
}

const char* const k_tables_query =
    "SELECT format('%s.%s', n.nspname, c.relname), format('%I.%I', n.nspname, c.relname) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND "
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
    "ORDER BY 1";

template <class Exec>
std::vector<std::pair<std::string, long long>> counts(Exec& e) {
  Rows tables = e.exec(k_tables_query);
  std::vector<std::pair<std::string, long long>> out;
  for (size_t i = 0; i < tables.size(); ++i) {
    out.emplace_back(tables.text(i, 0),
                     e.exec("SELECT count(*) FROM " + tables.text(i, 1)).integer(0, 0));
  }
  return out;
}

} // namespace

void insert_backup_marker(Session& s, const std::string& id) {
  s.exec("INSERT INTO lethe.backup_markers (backup_id) VALUES ($1)", {id});
}

bool has_backup_marker(Session& s, const std::string& id) {
  return !s.exec("SELECT 1 FROM lethe.backup_markers WHERE backup_id = $1", {id}).empty();
}

std::vector<std::pair<std::string, long long>> table_row_counts(Transaction& tx) {
  return counts(tx);
}

std::vector<std::pair<std::string, long long>> table_row_counts(Session& s) {
  return counts(s);
}

void insert_backup(Transaction& tx, const BackupRow& b) {
  tx.exec("INSERT INTO lethe.backups (backup_id, run_id, snapshot_at, path, size_bytes, sha256, "
          "manifest_path, manifest_bytes, manifest_sha256, retention_until, recipients, "
          "row_counts, evidence_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
          "$13)",
          {b.id, std::to_string(b.run_id), b.snapshot_at, b.path, std::to_string(b.size), b.sha256,
           b.manifest_path, std::to_string(b.manifest_size), b.manifest_sha256, b.retention_until,
           b.recipients, b.row_counts, std::to_string(b.evidence_seq)});
}

std::vector<BackupRow> backups(Session& s) {
  return select_backups(s, "true");
}

std::optional<BackupRow> find_backup(Session& s, const std::string& id) {
  std::vector<BackupRow> found = select_backups(s, "backup_id = $1", {id});
  return found.empty() ? std::nullopt : std::optional<BackupRow>(found.front());
}

std::vector<BackupRow> backups_past_retention(Session& s, const std::string& as_of) {
  Value at = as_of.empty() ? Value() : Value(as_of);
  return select_backups(
      s,
      "state <> 'destroyed' AND retention_until <= least(coalesce($1::timestamptz, now()), now())",
      {at});
}

std::vector<BackupRow> spooled_backups_within(Session& s, long days) {
  return select_backups(
      s, "state = 'spooled' AND snapshot_at >= now() - make_interval(days => $1::int)",
      {std::to_string(days)});
}

std::set<std::string> backup_ids(Session& s) {
  Rows r = s.exec("SELECT backup_id FROM lethe.backups");
  std::set<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.insert(r.text(i, 0));
  }
  return out;
}

void set_backup_state(Transaction& tx, const std::string& id, const std::string& state,
                      long long seq) {
  tx.exec("SELECT lethe.backup_set_state($1, $2, $3)", {id, state, std::to_string(seq)});
}

std::optional<BackupEvidence> backup_written_record(Session& s, const std::string& id) {
  Rows r = s.exec("SELECT counts::jsonb ->> 'bytes', details::jsonb ->> 'sha256', "
                  "details::jsonb ->> 'manifest_sha256' FROM lethe.audit_log WHERE exit_reason = "
                  "'backup_written' AND details::jsonb ->> 'backup_id' = $1",
                  {id});
  if (r.size() != 1) {
    return std::nullopt;
  }
  return BackupEvidence{r.at(0, 0).value_or(""), r.at(0, 1).value_or(""), r.at(0, 2).value_or("")};
}

long long insert_drill(Transaction& tx, const DrillRow& d) {
  auto num = [](const std::optional<double>& v) { return v ? Value(std::to_string(*v)) : Value(); };
  return tx
      .exec("INSERT INTO lethe.drills (kind, backup_id, run_id, started_at, restore_seconds, "
            "checks_seconds, rto_seconds, result, failed_check, database_name, database_kept, "
            "details, evidence_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nullif($9, ''), $10, "
            "$11, $12, $13) RETURNING drill_id",
            {d.kind, d.backup_id, std::to_string(d.run_id), d.started_at, num(d.restore_s),
             num(d.checks_s), num(d.rto_s), d.result, d.failed_check, d.database,
             d.kept ? "true" : "false", d.details, std::to_string(d.evidence_seq)})
      .integer(0, 0);
}

std::vector<DrillRow> drills(Session& s) {
  Rows r = s.exec("SELECT drill_id, kind, backup_id, coalesce(run_id, 0), " + iso("started_at") +
                  ", " + iso("finished_at") +
                  ", restore_seconds, checks_seconds, rto_seconds, result, coalesce(failed_check, "
                  "''), database_name, database_kept, details FROM lethe.drills ORDER BY drill_id");
  std::vector<DrillRow> out;
  auto num = [](const Value& v) { return v ? std::optional<double>(std::stod(*v)) : std::nullopt; };
  for (size_t i = 0; i < r.size(); ++i) {
    DrillRow d;
    d.id = r.integer(i, 0);
    d.kind = r.text(i, 1);
    d.backup_id = r.text(i, 2);
    d.run_id = r.integer(i, 3);
    d.started_at = r.text(i, 4);
    d.finished_at = r.text(i, 5);
    d.restore_s = num(r.at(i, 6));
    d.checks_s = num(r.at(i, 7));
    d.rto_s = num(r.at(i, 8));
    d.result = r.text(i, 9);
    d.failed_check = r.text(i, 10);
    d.database = r.text(i, 11);
    d.kept = r.text(i, 12) == "t";
    d.details = r.text(i, 13);
    out.push_back(std::move(d));
  }
  return out;
}

std::set<std::string> drill_databases_kept(Session& s, long keep_hours) {
  Rows r = s.exec("SELECT DISTINCT database_name FROM lethe.drills WHERE kind = 'drill' AND "
                  "database_kept AND finished_at + make_interval(hours => $1::int) > now()",
                  {std::to_string(keep_hours)});
  std::set<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.insert(r.text(i, 0));
  }
  return out;
}

std::vector<std::string> scratch_databases(Session& s, const std::string& prefix) {
  Rows r = s.exec("SELECT datname FROM pg_database WHERE left(datname, length($1)) = $1 AND "
                  "substr(datname, length($1) + 1) ~ '^[0-9]+$' ORDER BY 1",
                  {prefix});
  std::vector<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(r.text(i, 0));
  }
  return out;
}

bool run_is_running(Session& s, long long run_id) {
  Rows r = s.exec("SELECT outcome = 'running' FROM lethe.job_runs WHERE run_id = $1",
                  {std::to_string(run_id)});
  return !r.empty() && r.text(0, 0) == "t";
}

} // namespace lethe::db::store
