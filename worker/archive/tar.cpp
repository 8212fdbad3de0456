#include "worker/archive/tar.hpp"

#include "worker/util/error.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <ctime>
#include <exception>
#include <utility>
#include <vector>

namespace lethe::archive {
namespace {

[[noreturn]] void fail(struct archive* a, const std::string& what, Exit code = Exit::internal) {
  const char* msg = archive_error_string(a);
  throw Error(code, what + ": " + (msg != nullptr ? msg : "libarchive error"),
              code == Exit::data ? "the archive is damaged: restore it from another copy" : "");
}

} // namespace

struct TarWriter::Impl {
  ByteSink out;
  struct archive* a = nullptr;
  bool finished = false;
  // An exception from the sink, carried through libarchive's C callbacks (nothing may unwind
  // through C code) and rethrown as it was once the libarchive call returned.
  std::exception_ptr error;
  void rethrow() {
    if (error) {
      std::exception_ptr e = std::exchange(error, nullptr);
      std::rethrow_exception(e);
    }
  }
};

namespace {

la_ssize_t write_cb(struct archive*, void* data, const void* buf, size_t n) {
  auto* impl = static_cast<TarWriter::Impl*>(data);
  try {
    impl->out(static_cast<const unsigned char*>(buf), n);
  } catch (...) {
    impl->error = std::current_exception();
    return -1;
  }
  return static_cast<la_ssize_t>(n);
}

} // namespace

TarWriter::TarWriter(ByteSink out) : m_impl(std::make_unique<Impl>()) {
  m_impl->out = std::move(out);
  m_impl->a = archive_write_new();
  struct archive* a = m_impl->a;
  if (a == nullptr || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
      archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(a, 64 * 1024) != ARCHIVE_OK ||
      // No zero padding after the compressed stream: zstd readers take it for another frame.
      archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
      archive_write_open(a, m_impl.get(), nullptr, write_cb, nullptr) != ARCHIVE_OK) {
    m_impl->rethrow();
    fail(a, "cannot start the tar/zstd container");
  }
}

TarWriter::~TarWriter() {
  if (m_impl->a != nullptr) {
    if (!m_impl->finished) {
      archive_write_fail(m_impl->a);
    }
    archive_write_free(m_impl->a);
  }
}

void TarWriter::add(const std::string& name, std::string_view data) {
  struct archive* a = m_impl->a;
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0600);
  archive_entry_set_mtime(e, std::time(nullptr), 0);
  int rc = archive_write_header(a, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) {
    m_impl->rethrow();
    fail(a, "cannot write the header of member " + name);
  }
  size_t done = 0;
  while (done < data.size()) {
    la_ssize_t n = archive_write_data(a, data.data() + done, data.size() - done);
    if (n <= 0) {
      m_impl->rethrow();
      fail(a, "cannot write member " + name);
    }
    done += static_cast<size_t>(n);
  }
  if (archive_write_finish_entry(a) != ARCHIVE_OK) {
    m_impl->rethrow();
    fail(a, "cannot finish member " + name);
  }
}

void TarWriter::finish() {
  if (archive_write_close(m_impl->a) != ARCHIVE_OK) {
    m_impl->rethrow();
    fail(m_impl->a, "cannot close the container");
  }
  m_impl->finished = true;
}

struct TarReader::Impl {
  ByteSource in;
  struct archive* a = nullptr;
  std::vector<unsigned char> buf = std::vector<unsigned char>(256 * 1024);
  std::exception_ptr error; // as in TarWriter::Impl
  void rethrow() {
    if (error) {
      std::exception_ptr e = std::exchange(error, nullptr);
      std::rethrow_exception(e);
    }
  }
};

namespace {

la_ssize_t read_cb(struct archive*, void* data, const void** out) {
  auto* impl = static_cast<TarReader::Impl*>(data);
  try {
    size_t n = impl->in(impl->buf.data(), impl->buf.size());
    *out = impl->buf.data();
    return static_cast<la_ssize_t>(n);
  } catch (...) {
    impl->error = std::current_exception();
    return -1;
  }
}

} // namespace

TarReader::TarReader(ByteSource in) : m_impl(std::make_unique<Impl>()) {
  m_impl->in = std::move(in);
  m_impl->a = archive_read_new();
  struct archive* a = m_impl->a;
  if (a == nullptr || archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
      archive_read_support_format_tar(a) != ARCHIVE_OK ||
      archive_read_open(a, m_impl.get(), nullptr, read_cb, nullptr) != ARCHIVE_OK) {
    m_impl->rethrow();
    fail(a, "cannot open the tar/zstd container", Exit::data);
  }
}

TarReader::~TarReader() {
  if (m_impl->a != nullptr) {
    archive_read_free(m_impl->a);
  }
}

bool TarReader::next(std::string& name) {
  struct archive_entry* e = nullptr;
  int rc = archive_read_next_header(m_impl->a, &e);
  if (rc == ARCHIVE_EOF) {
    return false;
  }
  if (rc != ARCHIVE_OK) {
    m_impl->rethrow();
    fail(m_impl->a, "cannot read the next member", Exit::data);
  }
  name = archive_entry_pathname(e);
  return true;
}

void TarReader::read(const std::function<void(std::string_view chunk)>& chunk) {
  std::vector<char> buf(256 * 1024);
  while (true) {
    la_ssize_t n = archive_read_data(m_impl->a, buf.data(), buf.size());
    if (n == 0) {
      return;
    }
    if (n < 0) {
      m_impl->rethrow();
      fail(m_impl->a, "cannot read a member", Exit::data);
    }
    chunk(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
}

} // namespace lethe::archive
