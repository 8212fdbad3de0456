// File helpers that the policy cares about: secret files checked for owner and mode, and
// appends that reach the disk before we go on.
#pragma once

#include "worker/util/error.hpp"
#include "worker/util/secret.hpp"

#include <filesystem>
#include <string>
#include <system_error>

namespace lethe::util {

// std::filesystem failures as lethe Errors: permission denied is 77, a path that cannot be made
// (exists as something else, read-only or full file system) 73, anything else 74.
Exit exit_for(const std::error_code& ec) noexcept;
// An Error for `what` (e.g. "cannot create directory") on `path` failing with `ec`.
Error filesystem_error(const std::string& what, const std::filesystem::path& path,
                       const std::error_code& ec);

// std::filesystem calls that throw Error (with the path) instead of filesystem_error.
void create_directories(const std::filesystem::path& dir);
bool exists(const std::filesystem::path& path);
bool is_directory(const std::filesystem::path& path);
void rename(const std::filesystem::path& from, const std::filesystem::path& to);
// Removes `path` and everything under it; never throws (for cleanup on failure).
void remove_all_quietly(const std::filesystem::path& path) noexcept;
// Makes a new directory with mode 0700 under `parent`, named `prefix` plus random characters.
std::filesystem::path make_private_directory(const std::filesystem::path& parent,
                                             const std::string& prefix);

// Reads the secret file `path` after checking it is a regular file owned by the running user and
// not readable or writable by group or others; throws Error(permission) otherwise. `what` names
// the secret in messages ("database password"). A trailing newline is removed. The bytes are
// read straight into the Secret, so no other copy is left in memory.
Secret read_secret_file(const std::filesystem::path& path, const std::string& what);

// Path of credential `name` under systemd's $CREDENTIALS_DIRECTORY, or empty when not set or
// the credential does not exist.
std::filesystem::path systemd_credential(const std::string& name);

// Appends `line` (a newline is added) to `path`, creating it with mode 0600, and fsyncs it
// (and its directory when the file was created). Throws Error(io) on failure.
void append_durably(const std::filesystem::path& path, const std::string& line);

// What append_line_atomically() found before it appended.
struct AppendOutcome {
  bool created = false;    // the file did not exist
  size_t torn_bytes = 0;   // bytes of an unterminated last line that were cut off first
  long long torn_line = 0; // that line's number (0: none)
};

// Appends `line` and a newline to `path` so that the file holds either all of it or none of
// it: under an exclusive flock, an unterminated last line (a crash or full disk interrupted an
// earlier append) is cut off first, and a write that fails part way is cut back off before
// Error(io) is thrown. fsyncs the file (and its directory when it was created).
AppendOutcome append_line_atomically(const std::filesystem::path& path, const std::string& line);

// Reads the whole file `path`; throws Error(io) when it cannot.
std::string read_file(const std::filesystem::path& path);

// Writes `content` to `path` via a temporary file, fsync and rename, mode exactly `mode`.
void write_file_atomically(const std::filesystem::path& path, const std::string& content,
                           unsigned mode = 0600);

// A file written under a temporary name in its final directory and renamed into place only by
// commit() (after fsync of the file, then of the directory). Destroyed without commit(), it
// removes the temporary file: a failed write never leaves a complete-looking file behind.
class PendingFile {
public:
  PendingFile(const std::filesystem::path& final_path, unsigned mode);
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  void write(const void* data, size_t n);
  void commit();
  const std::filesystem::path& temp_path() const noexcept { return m_temp; }

private:
  std::filesystem::path m_final;
  std::filesystem::path m_temp;
  int m_fd = -1;
  bool m_committed = false;
};

} // namespace lethe::util
