#include "worker/util/files.hpp"

#include "worker/util/error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lethe::util {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

void fsync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(Exit::io, "cannot open directory " + dir.string() + ": " + errno_text());
  }
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) {
    throw Error(Exit::io, "cannot fsync directory " + dir.string() + ": " + errno_text());
  }
}

void write_all(int fd, const char* data, size_t size, const std::filesystem::path& path) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      throw Error(Exit::io, "cannot write " + path.string() + ": " + errno_text(),
                  "check free space and permissions of that file system");
    }
    done += static_cast<size_t>(n);
  }
}

} // namespace

Exit exit_for(const std::error_code& ec) noexcept {
  if (ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted) {
    return Exit::permission;
  }
  if (ec == std::errc::file_exists || ec == std::errc::not_a_directory ||
      ec == std::errc::is_a_directory || ec == std::errc::read_only_file_system ||
      ec == std::errc::no_space_on_device || ec == std::errc::directory_not_empty) {
    return Exit::cant_create;
  }
  return Exit::io;
}

Error filesystem_error(const std::string& what, const std::filesystem::path& path,
                       const std::error_code& ec) {
  Exit code = exit_for(ec);
  std::string hint = code == Exit::permission
                         ? "give the user lethe runs as access to that path, or choose another"
                     : code == Exit::cant_create
                         ? "choose a path that can be created (a writable file system with space)"
                         : "check that the path exists and its file system is healthy";
  return Error(code, what + " " + path.string() + ": " + ec.message(), hint);
}

void create_directories(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw filesystem_error("cannot create directory", dir, ec);
  }
}

bool exists(const std::filesystem::path& path) {
  std::error_code ec;
  bool found = std::filesystem::exists(path, ec);
  if (ec) {
    throw filesystem_error("cannot look at", path, ec);
  }
  return found;
}

bool is_directory(const std::filesystem::path& path) {
  std::error_code ec;
  bool dir = std::filesystem::is_directory(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw filesystem_error("cannot look at", path, ec);
  }
  return dir;
}

void rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec) {
    throw filesystem_error("cannot move " + from.string() + " to", to, ec);
  }
}

void remove_all_quietly(const std::filesystem::path& path) noexcept {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::filesystem::path make_private_directory(const std::filesystem::path& parent,
                                             const std::string& prefix) {
  std::string templ = (parent / (prefix + "XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw filesystem_error("cannot create a private directory in", parent,
                           std::error_code(errno, std::generic_category()));
  }
  return templ; // mkdtemp makes it with mode 0700
}

Secret read_secret_file(const std::filesystem::path& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(Exit::permission,
                what + " file " + path.string() + " cannot be read: " + errno_text(),
                "create it with mode 0600 (or 0400), owned by the user lethe runs as");
  }
  if (!S_ISREG(st.st_mode)) {
    throw Error(Exit::permission, what + " file " + path.string() + " is not a regular file",
                "point the setting at a regular file with mode 0600");
  }
  if (st.st_uid != ::geteuid()) {
    throw Error(Exit::permission,
                what + " file " + path.string() + " is owned by uid " + std::to_string(st.st_uid) +
                    ", not by the running user (uid " + std::to_string(::geteuid()) + ")",
                "chown it to the user lethe runs as, or pass it as a systemd credential");
  }
  if ((st.st_mode & 077) != 0) {
    std::ostringstream mode;
    mode << std::oct << (st.st_mode & 0777);
    throw Error(Exit::permission,
                what + " file " + path.string() + " has mode 0" + mode.str() +
                    ", readable or writable by group or others",
                "chmod 0600 " + path.string());
  }
  // Read straight into the secret's own buffer: no stream buffer or string keeps a copy.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(Exit::permission,
                what + " file " + path.string() + " cannot be read: " + errno_text(),
                "create it with mode 0600 (or 0400), owned by the user lethe runs as");
  }
  Secret text = Secret::with_capacity(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < text.capacity()) {
    ssize_t n = ::read(fd, text.data() + got, text.capacity() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      std::string err = errno_text();
      ::close(fd);
      throw Error(Exit::io, what + " file " + path.string() + " cannot be read: " + err,
                  "check the file and the disk");
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  while (got > 0 && (text.data()[got - 1] == '\n' || text.data()[got - 1] == '\r')) {
    --got;
  }
  text.resize(got);
  return text;
}

std::filesystem::path systemd_credential(const std::string& name) {
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == '\0' || name.empty()) {
    return {};
  }
  std::filesystem::path p = std::filesystem::path(dir) / name;
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) ? p : std::filesystem::path{};
}

void append_durably(const std::filesystem::path& path, const std::string& line) {
  bool existed = std::filesystem::exists(path);
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw Error(Exit::io, "cannot open " + path.string() + " for appending: " + errno_text(),
                "create its directory and make it writable by the user lethe runs as");
  }
  try {
    std::string text = line + "\n";
    write_all(fd, text.data(), text.size(), path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) {
    throw Error(Exit::io, "cannot fsync " + path.string() + ": " + errno_text());
  }
  if (!existed) {
    fsync_directory(path.parent_path());
  }
}

namespace {

// Where the last complete line of the open file `fd` (of `size` bytes) ends, and how many lines
// it holds up to there.
std::pair<off_t, long long> last_line_end(int fd, off_t size, const std::filesystem::path& path) {
  std::string text(static_cast<size_t>(size), '\0');
  if (size > 0 && ::pread(fd, text.data(), text.size(), 0) != size) {
    throw Error(Exit::io, "cannot read " + path.string() + ": " + errno_text());
  }
  size_t nl = text.rfind('\n');
  off_t end = nl == std::string::npos ? 0 : static_cast<off_t>(nl + 1);
  auto lines = static_cast<long long>(std::count(text.begin(), text.begin() + end, '\n'));
  return {end, lines};
}

} // namespace

AppendOutcome append_line_atomically(const std::filesystem::path& path, const std::string& line) {
  AppendOutcome out;
  out.created = !std::filesystem::exists(path);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw Error(Exit::io, "cannot open " + path.string() + " for appending: " + errno_text(),
                "create its directory and make it writable by the user lethe runs as");
  }
  try {
    if (::flock(fd, LOCK_EX) != 0) {
      throw Error(Exit::io, "cannot lock " + path.string() + ": " + errno_text());
    }
    off_t size = ::lseek(fd, 0, SEEK_END);
    off_t end = size;
    if (size > 0) {
      char last = 0;
      if (::pread(fd, &last, 1, size - 1) != 1) {
        throw Error(Exit::io, "cannot read " + path.string() + ": " + errno_text());
      }
      if (last != '\n') {
        auto [line_end, lines] = last_line_end(fd, size, path);
        end = line_end;
        out.torn_bytes = static_cast<size_t>(size - end);
        out.torn_line = lines + 1;
      }
    }
    if (end != size && ::ftruncate(fd, end) != 0) {
      throw Error(Exit::io,
                  "cannot cut the torn last line off " + path.string() + ": " + errno_text(),
                  "check free space and permissions of that file system");
    }
    std::string text = line + "\n";
    if (::lseek(fd, end, SEEK_SET) != end) {
      throw Error(Exit::io, "cannot seek in " + path.string() + ": " + errno_text());
    }
    try {
      write_all(fd, text.data(), text.size(), path);
      if (::fsync(fd) != 0) {
        throw Error(Exit::io, "cannot fsync " + path.string() + ": " + errno_text(),
                    "check free space and health of that file system");
      }
    } catch (...) {
      // Leave no torn line behind when we can; a crash here is what the next append repairs.
      if (::ftruncate(fd, end) == 0) {
        ::fsync(fd);
      }
      throw;
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  if (out.created) {
    fsync_directory(path.parent_path());
  }
  return out;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(Exit::io, "cannot read " + path.string() + ": " + errno_text());
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file_atomically(const std::filesystem::path& path, const std::string& content,
                           unsigned mode) {
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    throw Error(Exit::cant_create, "cannot create " + tmp.string() + ": " + errno_text());
  }
  try {
    // The mode exactly, whatever the umask (a metrics file another user reads: 0644).
    if (::fchmod(fd, mode) != 0) {
      throw Error(Exit::io, "cannot set the mode of " + tmp.string() + ": " + errno_text());
    }
    write_all(fd, content.data(), content.size(), tmp);
    if (::fsync(fd) != 0) {
      throw Error(Exit::io, "cannot fsync " + tmp.string() + ": " + errno_text());
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error(Exit::io,
                "cannot rename " + tmp.string() + " to " + path.string() + ": " + errno_text());
  }
  fsync_directory(path.parent_path());
}

PendingFile::PendingFile(const std::filesystem::path& final_path, unsigned mode)
    : m_final(final_path) {
  m_temp = final_path;
  m_temp += ".tmp-" + std::to_string(::getpid());
  m_fd = ::open(m_temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (m_fd < 0) {
    throw Error(Exit::cant_create, "cannot create " + m_temp.string() + ": " + errno_text(),
                "check that the directory exists and is writable");
  }
}

PendingFile::~PendingFile() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  if (!m_committed) {
    ::unlink(m_temp.c_str());
  }
}

void PendingFile::write(const void* data, size_t n) {
  write_all(m_fd, static_cast<const char*>(data), n, m_temp);
}

void PendingFile::commit() {
  if (::fsync(m_fd) != 0) {
    throw Error(Exit::io, "cannot fsync " + m_temp.string() + ": " + errno_text());
  }
  ::close(m_fd);
  m_fd = -1;
  if (::rename(m_temp.c_str(), m_final.c_str()) != 0) {
    throw Error(Exit::io, "cannot rename " + m_temp.string() + " to " + m_final.string() + ": " +
                              errno_text());
  }
  m_committed = true;
  fsync_directory(m_final.parent_path());
}

} // namespace lethe::util
