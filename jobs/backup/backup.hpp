// Encrypted backups and restore drills (C3, C4, C6): pg_dump streamed through the encryption
// core into the vault, cataloged with its evidence as a copy every deletion request tracks;
// drills restore a backup into a scratch database from the decrypting stream and prove it:
// its marker, every table's row count, the deletion ledger replayed, nothing overdue.
#pragma once

#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::jobs::backup {

// `lethe backup run`: marker, snapshot, pg_dump → sealed dump + sealed manifest, catalog.
int run_backup(Context& ctx, bool json);

// `lethe backup list`.
int run_list(Context& ctx, bool json);

struct VerifyOptions {
  bool read_data = false;
  std::string private_key;
  long max_duration_s = 0;
  int subset_index = 0; // --subset K/N: K (1-based); 0: all
  int subset_count = 0;
  bool json = false;
};

// `lethe backup verify`: present, length and SHA-256 against the catalog and the audit record;
// with --read-data, decrypted and listed by pg_restore --list.
int run_verify(Context& ctx, const VerifyOptions& opt);

// `lethe backup expire`: destroys spooled backups past their retention; reports cold ones.
int run_expire(Context& ctx, const std::string& as_of, bool json);

// `lethe backup mark-cold ID` / `mark-destroyed ID`.
int run_mark(Context& ctx, const std::string& id, const std::string& state);

struct DrillOptions {
  std::string private_key;
  std::string backup_id;       // --backup
  long random_within_days = 0; // --random-within
  bool restore = false;        // `lethe restore`: keep the database, with its ledger replayed
  std::string into_db;         // `lethe restore --into-db`
  std::string reason;          // `lethe restore --reason`
  std::string operator_name;   // --operator (a restore requires it)
  bool json = false;
};

// `lethe drill run` and `lethe restore`.
int run_drill(Context& ctx, const DrillOptions& opt);

// `lethe drill list`.
int run_drill_list(Context& ctx, bool json);

} // namespace lethe::jobs::backup
