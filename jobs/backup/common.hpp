// What the backup commands share (internal to jobs/backup).
#pragma once

#include "worker/crypto/esdk.hpp"
#include "worker/crypto/keys.hpp"
#include "worker/db/session.hpp"
#include "worker/db/store/backups.hpp"
#include "worker/settings/settings.hpp"
#include "worker/util/process.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace lethe::jobs::backup {

inline constexpr const char* k_dump_suffix = ".dump.lethe-backup";
inline constexpr const char* k_manifest_suffix = ".manifest.lethe-backup";
// Encryption-context keys naming what a sealed file is: the backup id under the key of its part.
inline constexpr const char* k_dump_label = "lethe-backup-dump";
inline constexpr const char* k_manifest_label = "lethe-backup-manifest";

// A child of pg_dump or pg_restore connecting to `dsn` (no password, validated) with
// sslmode=verify-full, the configured root certificate and the password through its
// environment only.
util::ChildSpec pg_child(const settings::Settings& s, const util::Secret& password,
                         const std::string& program, const std::string& what);

// lethe's words for a pg_dump or pg_restore that failed, from its exit code and what its stderr
// says (classified, never quoted: a server's error text can hold a row).
std::string child_failure(const util::Child& c, int status);

// The backup private key, with the decryption parameters that name it as backup.key_namespace /
// key_name. Error(usage) when `private_key` is empty.
struct BackupKey {
  crypto::RsaKey key;
  crypto::esdk::DecryptParams params;
};
std::unique_ptr<BackupKey> load_backup_key(const settings::Settings& s,
                                           const std::string& private_key);

// The sealed file at `path`, whose label `label` must name backup `id`, decrypted into memory
// (the manifest: a few KiB). Throws as vault::SealedReader does.
std::string read_sealed_text(const std::filesystem::path& path, const BackupKey& key,
                             const std::string& label, const std::string& id);

// Decrypts backup `b`'s dump with `key` and writes the plaintext to `child`'s stdin (when
// given) until the child stops taking it; with `read_through`, the rest is still decrypted, so
// every frame's tag and the whole plaintext's SHA-256 are checked whatever the child read.
struct Streamed {
  unsigned long long bytes = 0;
  std::string sha256;
  bool complete = false; // the whole message was read and verified
};
Streamed stream_dump(const db::store::BackupRow& b, const BackupKey& key, util::Child* child,
                     bool read_through);

// The manifest of backup `b`, decrypted and parsed; Error(data) when it is not lethe's or
// names another backup.
struct Manifest {
  std::string dump_sha256;
  unsigned long long dump_bytes = 0;
  std::string snapshot_at;
  std::vector<std::pair<std::string, long long>> tables;
  std::string server_version;
  std::string pg_dump_version;
};
Manifest read_manifest(const db::store::BackupRow& b, const BackupKey& key);

// What is wrong with backup `b` without any key, empty when nothing: its catalog row against
// its backup_written audit record, and both files on disk against both.
std::string evidence_problem(db::Session& s, const db::store::BackupRow& b);

} // namespace lethe::jobs::backup
