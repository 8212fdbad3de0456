// Pieces the archive commands share (internal to jobs/archive).
#pragma once

#include "worker/crypto/esdk.hpp"
#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"
#include "worker/vault/sealed.hpp"

#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace lethe::jobs::archive {

inline constexpr const char* k_archive_suffix = ".lethe-archive";

// Creates archive.spool_dir (0700) if missing; refuses one others can read.
void ensure_spool(const settings::Settings& s);

// Ids of the archives the catalog names (in any state).
std::set<std::string> cataloged_ids(db::Session& session);

// What an archive file's unencrypted ESDK header says; both empty when the header is incomplete
// or unreadable.
struct FileHeader {
  std::string archive_id; // encryption context lethe-archive-id
  std::string source;     // encryption context lethe-source: the database that wrote it
};

// The header of the file at `path`.
FileHeader read_header(const std::filesystem::path& path);

struct TableColumns {
  std::string table;
  std::vector<std::pair<std::string, std::string>> columns; // name, format_type
};

// The columns of every PII-map table, in table order.
std::vector<TableColumns> table_columns(db::Transaction& tx, const settings::Settings& s);

using vault::Recipients;

// The public keys of archive.recipients.
Recipients load_recipients(const settings::Settings& s);

// How an archive is sealed: to `rcpt`'s keys, its header (the unencrypted encryption context)
// naming it, its retention, the format and the database it holds orders of.
crypto::esdk::EncryptParams archive_params(const Recipients& rcpt, const std::string& id,
                                           const std::string& retention_until,
                                           const std::string& source);

using vault::check_file;
using vault::FileCheck;

// An archive as the catalog records it.
struct ArchiveFacts {
  std::string id;
  std::string path;
  unsigned long long size = 0;
  std::string sha256;
  std::string state;
};

enum class ReadFile { yes, no };

// What is wrong with archive `a`, empty when nothing: its catalog row against its
// archive_written audit record (length, SHA-256) and the state changes the trail records, and
// with ReadFile::yes the file on disk against both. Used by `archive verify` and, before it
// decrypts anything, by `archive restore`.
std::string evidence_problem(db::Session& session, const ArchiveFacts& a, ReadFile read);

} // namespace lethe::jobs::archive
