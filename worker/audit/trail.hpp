// The audit trail (C13, C14, C17): append-only records in lethe.audit_log, each hashed with its
// predecessor's hash, the newest hash also appended to an anchor file outside the database.
// Records carry counts and lethe's own ids, never a PII value.
#pragma once

#include "worker/db/session.hpp"
#include "worker/util/identity.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lethe::audit {

enum class Kind { run, refusal, alarm, manual };
const char* kind_name(Kind kind);

struct Record {
  Kind kind = Kind::run;
  std::string job;
  std::string outcome;     // done, refused, failed, interrupted, …
  std::string exit_reason; // one stable word: done, nothing_due, tls_refused, safety_limit, …
  std::optional<long long> run_id;
  std::string counts = "{}";  // JSON object of numbers
  std::string details = "{}"; // JSON object of lethe's own facts
};

// Whether a record is the one that ends its run: then the run's job_runs row is closed in the
// same transaction that inserts the record, so a run is never closed without its evidence.
enum class Closes { nothing, run };

// A record as stored, with its place in the chain.
struct Stored {
  long long seq = 0;
  std::string recorded_at; // UTC, ISO 8601 with microseconds
  Record record;
  std::string actor;
  std::string os_user;
  std::string unit;
  std::string db_role; // the role that inserted it (server-stamped); empty: before schema 3
  std::string prev_hash;
  std::string hash;
};

inline const std::string k_genesis_hash(64, '0');

// SHA-256 hex over `s`'s content and its prev_hash: the chain link `lethe audit verify` checks.
// Version 2 (every record with a db_role) covers the role too; version 1 is for records
// inserted before schema 3, which have none.
std::string chain_hash(const Stored& s);

class Trail {
public:
  Trail(std::filesystem::path anchor_file, std::filesystem::path spool_file, util::Identity who);

  // Appends `r` to the chain in the database, then its hash to the anchor file.
  Stored append(db::Session& session, const Record& r, Closes closes = Closes::nothing);

  // Appends `r` to the chain inside the caller's transaction `tx`, so evidence commits with the
  // fact it records; the caller calls anchor() with the result once `tx` has committed. With
  // `closes` = run, also ends `r.run_id`'s job_runs row with `r`'s outcome and counts.
  Stored append_in(db::Transaction& tx, const Record& r, Closes closes = Closes::nothing);

  // Appends the line of the committed record `s` to the anchor file, first cutting off a torn
  // line an interrupted append left. Throws Error(io) with a hint when it cannot: the record is
  // committed, so the caller's run has failed, and the next append repairs the anchor.
  void anchor(const Stored& s);

  // Keeps `r` in the spool file (fsynced) for a run that reaches the database later; only for a
  // record whose insert did not commit (TLS refused, server down). `maybe_hash` is the hash it
  // would have had if its commit is in doubt, so the flush can tell it did commit. Never throws:
  // a failure is logged.
  void spool(const Record& r, Closes closes = Closes::nothing,
             const std::string& maybe_hash = {}) noexcept;

  // Moves spooled records into the database (skipping any already moved); returns how many.
  size_t flush_spool(db::Session& session);

  const std::filesystem::path& anchor_file() const noexcept { return m_anchor; }

  const util::Identity& identity() const noexcept { return m_who; }

private:
  std::filesystem::path m_anchor;
  std::filesystem::path m_spool;
  util::Identity m_who;
};

struct VerifyReport {
  long long records = 0;
  long long anchored_seq = 0; // newest seq named by the anchor file (0: none)
  bool ok = true;
  long long first_broken_seq = 0; // 0 with !ok: the anchor file, not a record, is at fault
  std::string problem;            // empty when ok
  std::string hint;               // what to do about `problem`
  std::string warning;            // e.g. a torn last anchor line the next append repairs
};

// Recomputes the whole chain and compares it with the anchor file: every line must parse and
// name a record with that hash, the newest line must not name a record the table lacks, and a
// non-empty table needs a non-empty anchor.
VerifyReport verify(db::Session& session, const std::filesystem::path& anchor_file);

// `lethe audit reanchor`: when the anchor file is absent, empty or holds lines that do not parse,
// records who (`trail`'s identity) re-anchored and why (`reason`) as a manual record, keeps the
// old file beside it (".replaced-<seq>") and starts a new anchor file at that record. Refuses
// (Error data) when the chain is broken or a parsing line disagrees with the table: that is
// evidence of tampering, which re-anchoring must not hide.
Stored reanchor(db::Session& session, Trail& trail, const std::string& reason);

struct ShowFilter {
  long long limit = 50; // newest N
  std::string job;      // empty: all
};

// The newest records matching `f`, oldest first.
std::vector<Stored> show(db::Session& session, const ShowFilter& f);

// `s` as one JSON object.
std::string to_json(const Stored& s);

} // namespace lethe::audit
