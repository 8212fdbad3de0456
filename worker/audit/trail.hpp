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

// A record as stored, with its place in the chain.
struct Stored {
  long long seq = 0;
  std::string recorded_at; // UTC, ISO 8601 with microseconds
  Record record;
  std::string actor;
  std::string os_user;
  std::string unit;
  std::string prev_hash;
  std::string hash;
};

inline const std::string k_genesis_hash(64, '0');

// SHA-256 hex over `s`'s content and its prev_hash: the chain link `lethe audit verify` checks.
std::string chain_hash(const Stored& s);

class Trail {
public:
  Trail(std::filesystem::path anchor_file, std::filesystem::path spool_file, util::Identity who);

  // Appends `r` to the chain in the database, then its hash to the anchor file.
  Stored append(db::Session& session, const Record& r);

  // Appends `r` to the chain inside the caller's transaction `tx`, so evidence commits with the
  // fact it records; the caller calls anchor() with the result once `tx` has committed.
  Stored append_in(db::Transaction& tx, const Record& r);

  // Appends the hash of the committed record `s` to the anchor file.
  void anchor(const Stored& s);

  // Keeps `r` in the spool file (fsynced) for a run that reaches the database later; used when
  // the database cannot be reached (TLS refused, server down). Never throws: a failure is logged.
  void spool(const Record& r) noexcept;

  // Moves spooled records into the database (skipping any already moved); returns how many.
  size_t flush_spool(db::Session& session);

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
  long long first_broken_seq = 0;
  std::string problem; // empty when ok
  std::string warning; // e.g. anchor file absent
};

// Recomputes the whole chain and compares it with the anchor file.
VerifyReport verify(db::Session& session, const std::filesystem::path& anchor_file);

struct ShowFilter {
  long long limit = 50; // newest N
  std::string job;      // empty: all
};

// The newest records matching `f`, oldest first.
std::vector<Stored> show(db::Session& session, const ShowFilter& f);

// `s` as one JSON object.
std::string to_json(const Stored& s);

} // namespace lethe::audit
