// The vault: sealed files. A sealed file is one AWS Encryption SDK message to the configured
// public keys, so the host that writes it cannot read it back. Archives are sealed files;
// backups will be. The vault knows nothing of what is inside: callers stream plaintext in (a
// tar+zstd container, a pg_dump stream) and get back where the file is, its length and SHA-256.
//
//   write:  SealedWriter (temp name, 0600) → finish() → commit() (fsync, rename, dir fsync) →
//           check_written() (re-read: length and SHA-256 must be what was written)
//   open:   SealedReader (decrypt with the private key, the label checked before any plaintext
//           is handed out, each frame released only after its tag verified)
//   check:  check_file() (present, length, SHA-256 as on disk)
//   who:    read_label() (the unencrypted encryption context: a file is identified by the id
//           in its header, never by its name)
//   expire: destroy() (overwrite with zeros, fsync, unlink, fsync the directory)
#pragma once

#include "worker/crypto/esdk.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace lethe::vault {

// Creates the spool directory `dir` (0700) when missing; refuses one that is not a directory
// or that group or others can open. `setting` names the configuration key, for the messages.
void ensure_spool(const std::filesystem::path& dir, const std::string& setting);

// A new id for a sealed file: `prefix`, the UTC time to the second and 6 random hex digits
// ("b20261129T093000Z-3fa9c1"): sortable by time, and two runs in one second do not collide.
std::string new_id(const std::string& prefix);

// The public keys a sealed file is written to, loaded from their files.
struct Recipients {
  std::vector<crypto::RsaKey> owned;
  std::vector<crypto::esdk::WrappingKey> keys;
  std::string json; // [{"namespace","name","file","sha256"}] — key ids, no key material
};
Recipients load_recipients(const std::vector<std::string>& files, const std::string& key_namespace,
                           const std::string& key_name);

// Where a sealed file went and what it is, as written.
struct Sealed {
  std::filesystem::path path;
  unsigned long long size = 0;
  std::string sha256;
};

// Streams plaintext into an encrypted file under a temporary name beside `final_path`. Nothing
// appears under `final_path` before commit(); a writer destroyed before commit() removes its
// temporary file (a crash leaves it, for the next run's orphan handling).
class SealedWriter {
public:
  SealedWriter(std::filesystem::path final_path, const crypto::esdk::EncryptParams& params);
  ~SealedWriter();
  SealedWriter(const SealedWriter&) = delete;
  SealedWriter& operator=(const SealedWriter&) = delete;

  void write(const unsigned char* data, size_t n);
  // Ends the message; the file is complete under its temporary name.
  const Sealed& finish();
  // fsync, rename to the final name, fsync the directory.
  void commit();

  const std::filesystem::path& temp_path() const noexcept { return m_file.temp_path(); }

private:
  util::PendingFile m_file;
  crypto::Sha256 m_hash;
  Sealed m_sealed;
  std::unique_ptr<crypto::esdk::Encryptor> m_enc;
  bool m_finished = false;
};

// Reads a sealed file back as plaintext, pulled by the caller (a tar reader, a restore).
// Throws Error(io) when the file cannot be opened, Error(data) when its label's `label_key` is
// not `label_value` (another file under this path), and the decryptor's FormatError when the
// message is damaged or the key does not fit.
class SealedReader {
public:
  SealedReader(const std::filesystem::path& path, const crypto::esdk::DecryptParams& params,
               std::string label_key, std::string label_value, std::string what);
  ~SealedReader();
  SealedReader(const SealedReader&) = delete;
  SealedReader& operator=(const SealedReader&) = delete;

  // Up to `cap` plaintext bytes into `buf`; 0 once the whole message was read and verified.
  size_t read(unsigned char* buf, size_t cap);

private:
  void refill();

  std::filesystem::path m_path;
  std::string m_label_key;
  std::string m_label_value;
  std::string m_what;
  std::unique_ptr<std::ifstream> m_in;
  std::unique_ptr<crypto::esdk::Decryptor> m_dec;
  std::string m_pending;
  std::vector<char> m_buf; // ciphertext read from the file, reused
  size_t m_at = 0;
  bool m_ended = false;
  bool m_label_checked = false;
};

// Length and SHA-256 of the file at `path` as it is on disk (exists = false when unreadable).
struct FileCheck {
  bool exists = false;
  unsigned long long size = 0;
  std::string sha256;
};
FileCheck check_file(const std::filesystem::path& path);

// Re-reads a committed file: throws Error(io) with `hint` when its length or SHA-256 is not
// what was written.
void check_written(const Sealed& s, const std::string& what, const std::string& hint);

// The unencrypted encryption context of the sealed file at `path`; empty when its header is
// incomplete or not a message lethe can parse.
crypto::esdk::Context read_label(const std::filesystem::path& path);

// Overwrites the file at `path` with zeros (so its blocks do not keep the ciphertext), fsyncs
// it, unlinks it and fsyncs its directory; throws Error(io) naming `what` ("archive file") and
// the step that failed, with `hint`.
void destroy(const std::filesystem::path& path, const std::string& what, const std::string& hint);

} // namespace lethe::vault
