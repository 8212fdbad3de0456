// Reading archives back (internal to jobs/archive): shared by verify and restore.
#pragma once

#include "jobs/archive/common.hpp"
#include "worker/crypto/keys.hpp"
#include "worker/db/session.hpp"
#include "worker/db/store/archives.hpp"
#include "worker/runtime/context.hpp"
#include "worker/settings/settings.hpp"

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::jobs::archive {

// An archive's catalog row.
using Cataloged = db::store::ArchiveRow;

// The catalog row of archive `id`; throws Error(data) with a HINT when there is none.
Cataloged find_archive(db::Session& s, const std::string& id);

ArchiveFacts facts_of(const Cataloged& a);

// Counts CSV records in a stream (newlines outside quoted fields).
struct CsvCounter {
  bool quoted = false;
  long long lines = 0;
  void feed(std::string_view s) {
    for (char c : s) {
      if (c == '"') {
        quoted = !quoted;
      } else if (c == '\n' && !quoted) {
        ++lines;
      }
    }
  }
};

// The private key given does not fit an archive: the file is fine, the key is not its.
class KeyMismatch : public Error {
public:
  KeyMismatch(const std::string& msg, const std::string& hint) : Error(Exit::data, msg, hint) {}
};

struct MemberFacts {
  std::string sha256;
  long long rows = 0;
};

// Decrypts archive file `path` with `key` and walks its members: `member(name, data)` gets each
// member whole (members are bounded by archive.member_mib). Checks the encryption context names
// archive `id`.
void read_members(const settings::Settings& s, const std::string& path, const std::string& id,
                  const crypto::RsaKey& key,
                  const std::function<void(const std::string&, const std::string&)>& member);

// The keys archive `id` was written to, from its catalog row (names and public key digests,
// nothing secret), for telling an operator which private key to use.
std::string written_to(db::Session& db, const std::string& id);

// read_members, telling a private key that does not fit (KeyMismatch) apart from a damaged file.
void read_archive(db::Session& db, const settings::Settings& s, const std::string& path,
                  const std::string& id, const crypto::RsaKey& key,
                  const std::function<void(const std::string&, const std::string&)>& member);

// An archive's contents as checked against its manifest.
struct Contents {
  std::map<std::string, MemberFacts> members; // by name; rows count part-00001's header line
  std::string tables;                         // tables.json
  std::string manifest;                       // manifest.json
};

// Refuses archive `id`'s contents (exit 65): "archive ID <what>; nothing was <nothing_done>".
[[noreturn]] void refuse_contents(const std::string& id, const std::string& what,
                                  const char* nothing_done);

// SHA-256 and CSV records of a member.
MemberFacts member_facts(const std::string& data);

// Reads the whole archive once and checks it against its manifest before anything is written
// or loaded: every member named by the manifest, with its SHA-256 and row count, no member the
// manifest does not name, tables.json equal to the manifest's tables. `nothing_done` says what
// a refusal did not do ("restored").
Contents verify_contents(db::Session& s, const settings::Settings& st, const Cataloged& a,
                         const crypto::RsaKey& key, const char* nothing_done);

// Reads the archive again: `use` gets each member only after it matched `checked` (the file
// could change between the two reads).
void read_verified(db::Session& s, const settings::Settings& st, const Cataloged& a,
                   const crypto::RsaKey& key, const Contents& checked, const char* nothing_done,
                   const std::function<void(const std::string&, const std::string&)>& use);

// Destroys spooled archive `a` and records it in one transaction: the audit record `rec` and
// the state change first (so a refusal, e.g. a missing grant or a retention not yet over, leaves
// the file untouched), then the file, then the commit. A destroy that fails rolls the record
// back; a commit that fails after the file is gone is spooled as an alarm and thrown. `again`:
// the command a HINT tells the operator to run again.
// FileState::absent: the file is already gone (a crash between unlink and commit); only the
// record is written.
enum class FileState { present, absent };
void destroy_recorded(Context& ctx, const Cataloged& a, const audit::Record& rec,
                      const std::string& again, FileState file = FileState::present);

// COPYs one CSV member into `target`; a member that does not fit its table is bad data.
long long load_member(db::Transaction& tx, const std::string& id, const std::string& name,
                      const std::string& target, const std::string& data);

} // namespace lethe::jobs::archive
