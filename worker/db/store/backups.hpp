// Typed access to the backup catalog and the drill record (schema 8: lethe.backup_markers,
// lethe.backups, lethe.drills). Catalog rows commit only with their audit record (the triggers
// and lethe.backup_set_state check it).
#pragma once

#include "worker/db/session.hpp"

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace lethe::db::store {

struct BackupRow {
  std::string id;
  long long run_id = 0;
  std::string snapshot_at; // ISO, UTC
  std::string path;
  unsigned long long size = 0;
  std::string sha256;
  std::string manifest_path;
  unsigned long long manifest_size = 0;
  std::string manifest_sha256;
  std::string retention_until; // ISO, UTC
  std::string recipients;      // JSON
  std::string row_counts;      // JSON {"schema.table": rows}
  long long evidence_seq = 0;
  std::string state; // spooled | cold | destroyed
  std::string destroyed_at;
  std::string destroyed_by;
};

// Inserts the marker row of backup `id` in its own committed transaction.
void insert_backup_marker(Session& s, const std::string& id);
// Whether the database behind `s` holds backup `id`'s marker (a restored database does).
bool has_backup_marker(Session& s, const std::string& id);

// The ordinary tables of the database (system schemas aside), schema-qualified, in name order,
// with their exact row counts in the transaction's snapshot.
std::vector<std::pair<std::string, long long>> table_row_counts(Transaction& tx);
// The same, in a session of another database (a restored one).
std::vector<std::pair<std::string, long long>> table_row_counts(Session& s);

void insert_backup(Transaction& tx, const BackupRow& b);
std::vector<BackupRow> backups(Session& s);
std::optional<BackupRow> find_backup(Session& s, const std::string& id);
// Backups not destroyed whose retention ended by `as_of` (empty: now).
std::vector<BackupRow> backups_past_retention(Session& s, const std::string& as_of);
// Spooled backups whose snapshot was taken within the last `days` days (by the server's clock).
std::vector<BackupRow> spooled_backups_within(Session& s, long days);
std::set<std::string> backup_ids(Session& s);
// Moves the backup's state through lethe.backup_set_state, after its audit record `seq`.
void set_backup_state(Transaction& tx, const std::string& id, const std::string& state,
                      long long seq);

// The backup_written audit record's length and SHA-256 for backup `id` (empty when it has
// none or more than one).
struct BackupEvidence {
  std::string bytes;
  std::string sha256;
  std::string manifest_sha256;
};
std::optional<BackupEvidence> backup_written_record(Session& s, const std::string& id);

struct DrillRow {
  std::string kind; // drill | restore
  std::string backup_id;
  long long run_id = 0;
  std::string started_at; // ISO
  std::optional<double> restore_s;
  std::optional<double> checks_s;
  std::optional<double> rto_s;
  std::string result; // SUCCESSFUL | FAILED | TIMED_OUT
  std::string failed_check;
  std::string database;
  bool kept = false;
  std::string details; // JSON
  long long evidence_seq = 0;
  long long id = 0;        // when read back
  std::string finished_at; // when read back
};
long long insert_drill(Transaction& tx, const DrillRow& d);
std::vector<DrillRow> drills(Session& s);
// Scratch databases of earlier drills still kept for inspection (drill.keep_hours not over).
std::set<std::string> drill_databases_kept(Session& s, long keep_hours);
// The databases named `prefix` followed by a run number that exist on the server behind `s`.
std::vector<std::string> scratch_databases(Session& s, const std::string& prefix);
// Whether job run `run_id` is still running (its process alive, as far as the catalog knows).
bool run_is_running(Session& s, long long run_id);

} // namespace lethe::db::store
