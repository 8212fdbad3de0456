#include "worker/vault/sealed.hpp"

#include "worker/crypto/keys.hpp"
#include "worker/util/json.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace lethe::vault {

void ensure_spool(const std::filesystem::path& dir, const std::string& setting) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      throw Error(Exit::cant_create,
                  "cannot create the spool " + dir.string() + ": " + ec.message(),
                  "create it (mode 0700, owned by the user lethe runs as) or fix " + setting);
    }
    ::chmod(dir.c_str(), 0700);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(Exit::config, setting + " " + dir.string() + " is not a directory",
                "point " + setting + " at a directory of mode 0700");
  }
  if ((st.st_mode & 077) != 0) {
    throw Error(Exit::permission, "spool " + dir.string() + " is open to group or others",
                "chmod 0700 " + dir.string());
  }
}

SealedWriter::SealedWriter(std::filesystem::path final_path,
                           const crypto::esdk::EncryptParams& params)
    : m_file(final_path, 0600) {
  m_sealed.path = std::move(final_path);
  m_enc =
      std::make_unique<crypto::esdk::Encryptor>(params, [this](const unsigned char* p, size_t n) {
        m_file.write(p, n);
        m_hash.update(std::string_view(reinterpret_cast<const char*>(p), n));
        m_sealed.size += n;
      });
}

SealedWriter::~SealedWriter() = default;

void SealedWriter::write(const unsigned char* data, size_t n) {
  m_enc->update(data, n);
}

const Sealed& SealedWriter::finish() {
  if (!m_finished) {
    m_enc->finish();
    m_sealed.sha256 = crypto::hex(m_hash.finish());
    m_finished = true;
  }
  return m_sealed;
}

void SealedWriter::commit() {
  finish();
  m_file.commit();
}

SealedReader::SealedReader(const std::filesystem::path& path,
                           const crypto::esdk::DecryptParams& params, std::string label_key,
                           std::string label_value, std::string what)
    : m_path(path), m_label_key(std::move(label_key)), m_label_value(std::move(label_value)),
      m_what(std::move(what)), m_in(std::make_unique<std::ifstream>(path, std::ios::binary)) {
  if (!*m_in) {
    throw Error(Exit::io, "cannot open " + m_what + " file " + path.string(),
                "fetch it back from cold storage to this path first");
  }
  m_dec =
      std::make_unique<crypto::esdk::Decryptor>(params, [this](const unsigned char* p, size_t n) {
        m_pending.append(reinterpret_cast<const char*>(p), n);
      });
}

SealedReader::~SealedReader() = default;

void SealedReader::refill() {
  if (m_at < m_pending.size() || m_ended) {
    return; // the caller pulls in small pieces: most calls need no read at all
  }
  std::vector<char>& buf = m_buf;
  buf.resize(256 * 1024);
  while (m_at == m_pending.size() && !m_ended) {
    m_pending.clear();
    m_at = 0;
    m_in->read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize n = m_in->gcount();
    if (n > 0) {
      m_dec->update(reinterpret_cast<const unsigned char*>(buf.data()), static_cast<size_t>(n));
    } else {
      m_dec->finish();
      m_ended = true;
    }
    if (!m_label_checked && m_dec->header_read()) {
      m_label_checked = true;
      auto it = m_dec->context().find(m_label_key);
      if (it == m_dec->context().end() || it->second != m_label_value) {
        throw Error(Exit::data,
                    "file " + m_path.string() + " is not " + m_what + " " + m_label_value,
                    "its encryption context names another " + m_what + ": check the path");
      }
    }
  }
}

size_t SealedReader::read(unsigned char* buf, size_t cap) {
  refill();
  size_t n = std::min(cap, m_pending.size() - m_at);
  std::memcpy(buf, m_pending.data() + m_at, n);
  m_at += n;
  return n;
}

FileCheck check_file(const std::filesystem::path& path) {
  FileCheck c;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return c;
  }
  c.exists = true;
  crypto::Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize n = in.gcount();
    if (n > 0) {
      h.update(std::string_view(buf.data(), static_cast<size_t>(n)));
      c.size += static_cast<unsigned long long>(n);
    }
  }
  c.sha256 = crypto::hex(h.finish());
  return c;
}

void check_written(const Sealed& s, const std::string& what, const std::string& hint) {
  FileCheck c = check_file(s.path);
  if (!c.exists || c.size != s.size || c.sha256 != s.sha256) {
    throw Error(Exit::io, what + " reads back differently from what was written", hint);
  }
}

crypto::esdk::Context read_label(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(1 << 20, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  crypto::esdk::Context ctx;
  try {
    if (crypto::esdk::parse_header_only(reinterpret_cast<const unsigned char*>(head.data()),
                                        head.size(), crypto::esdk::k_default_max_wrapped_keys,
                                        &ctx) > 0) {
      return ctx;
    }
  } catch (const Error&) {
    // not a message lethe can read the header of
  }
  return {};
}

namespace {

struct Destroying {
  const std::filesystem::path& path;
  const std::string& what;
  const std::string& hint;
};

Error destroy_error(const Destroying& d, const char* step, int err) {
  return Error(Exit::io,
               "cannot destroy " + d.what + " " + d.path.string() + ": " + step + ": " +
                   std::strerror(err),
               d.hint);
}

void overwrite_and_sync(int fd, const Destroying& d) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw destroy_error(d, "stat", errno);
  }
  if (!S_ISREG(st.st_mode)) {
    throw destroy_error(d, "not a regular file", EINVAL);
  }
  std::vector<char> zeros(1 << 20, 0);
  auto left = static_cast<unsigned long long>(st.st_size);
  while (left > 0) {
    size_t n = static_cast<size_t>(std::min<unsigned long long>(left, zeros.size()));
    ssize_t w = ::write(fd, zeros.data(), n);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      throw destroy_error(d, "overwrite", w < 0 ? errno : EIO);
    }
    left -= static_cast<unsigned long long>(w);
  }
  if (::fsync(fd) != 0) {
    throw destroy_error(d, "fsync", errno);
  }
}

} // namespace

void destroy(const std::filesystem::path& path, const std::string& what, const std::string& hint) {
  const Destroying d{path, what, hint};
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    throw destroy_error(d, "open", errno);
  }
  try {
    overwrite_and_sync(fd, d);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) {
    throw destroy_error(d, "close", errno);
  }
  if (::unlink(path.c_str()) != 0) {
    throw destroy_error(d, "unlink", errno);
  }
  std::filesystem::path dir = path.parent_path();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    throw destroy_error(d, "open its directory", errno);
  }
  int synced = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (synced != 0) {
    throw destroy_error(d, "fsync its directory", err);
  }
}

std::string new_id(const std::string& prefix) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", rd() & 0xffffff);
  return prefix + stamp + "-" + suffix;
}

Recipients load_recipients(const std::vector<std::string>& files, const std::string& key_namespace,
                           const std::string& key_name) {
  Recipients out;
  out.owned.reserve(files.size());
  util::Json keys = util::Json::array();
  for (const std::string& file : files) {
    out.owned.push_back(crypto::load_public_key(file));
    keys.push_back({{"namespace", key_namespace},
                    {"name", key_name},
                    {"file", file},
                    {"sha256", crypto::hex(crypto::sha256(util::read_file(file)))}});
  }
  for (const crypto::RsaKey& k : out.owned) {
    out.keys.push_back({key_namespace, key_name, &k});
  }
  out.json = util::dump(keys);
  return out;
}

} // namespace lethe::vault
