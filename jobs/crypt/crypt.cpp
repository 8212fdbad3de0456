#include "jobs/crypt/crypt.hpp"

#include "worker/log/log.hpp"
#include "worker/util/files.hpp"

#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace lethe::jobs::crypt {
namespace {

constexpr size_t k_chunk = 1 << 20;

// Reads all of `path` (or stdin) in chunks into `consume`.
// Reads all of `path` (or stdin) into `consume`. A second thread reads the next chunk while
// `consume` works on the current one, so reading and encrypting overlap (two chunks in flight,
// memory stays constant).
void read_stream(const std::string& path,
                 const std::function<void(const unsigned char*, size_t)>& consume) {
  int fd = STDIN_FILENO;
  if (!path.empty()) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      throw Error(Exit::io, "cannot open " + path + ": " + std::strerror(errno),
                  "check the --in path");
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  struct Slot {
    std::vector<unsigned char> data = std::vector<unsigned char>(k_chunk);
    size_t size = 0;
    bool full = false;
  };
  // Shared with the reader thread, which owns a reference: if `consume` fails while the reader
  // is blocked on a pipe, the thread is left to finish on its own instead of being waited for.
  struct State {
    std::array<Slot, 2> slots;
    std::mutex mutex;
    std::condition_variable changed;
    bool eof = false;
    bool stop = false;
    int read_errno = 0;
    int fd = -1;
  };
  auto st = std::make_shared<State>();
  st->fd = fd;
  std::thread reader([st] {
    for (size_t i = 0;; i ^= 1) {
      Slot& slot = st->slots[i];
      {
        std::unique_lock<std::mutex> lock(st->mutex);
        st->changed.wait(lock, [&] { return !slot.full || st->stop; });
        if (st->stop) {
          break;
        }
      }
      ssize_t n = 0;
      do {
        n = ::read(st->fd, slot.data.data(), slot.data.size());
      } while (n < 0 && errno == EINTR);
      std::lock_guard<std::mutex> lock(st->mutex);
      if (n <= 0 || st->stop) {
        st->read_errno = n < 0 ? errno : 0;
        st->eof = true;
        st->changed.notify_all();
        break;
      }
      slot.size = static_cast<size_t>(n);
      slot.full = true;
      st->changed.notify_all();
    }
    if (st->fd != STDIN_FILENO) {
      ::close(st->fd);
    }
  });
  try {
    for (size_t i = 0;; i ^= 1) {
      Slot& slot = st->slots[i];
      {
        std::unique_lock<std::mutex> lock(st->mutex);
        st->changed.wait(lock, [&] { return slot.full || st->eof; });
        if (!slot.full) {
          break;
        }
      }
      consume(slot.data.data(), slot.size);
      std::lock_guard<std::mutex> lock(st->mutex);
      slot.full = false;
      st->changed.notify_all();
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(st->mutex);
      st->stop = true;
      st->changed.notify_all();
    }
    reader.detach();
    throw;
  }
  reader.join();
  if (st->read_errno != 0) {
    throw Error(Exit::io, "cannot read " + (path.empty() ? std::string("stdin") : path) + ": " +
                              std::strerror(st->read_errno));
  }
}

// Output to a PendingFile (renamed into place at the end) or to stdout.
class Output {
public:
  Output(const std::string& path, unsigned mode) {
    if (!path.empty()) {
      m_file = std::make_unique<util::PendingFile>(path, mode);
    }
  }
  void write(const unsigned char* p, size_t n) {
    if (m_file) {
      m_file->write(p, n);
      return;
    }
    while (n > 0) {
      ssize_t w = ::write(STDOUT_FILENO, p, n);
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w < 0) {
        throw Error(Exit::io, std::string("cannot write stdout: ") + std::strerror(errno));
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void commit() {
    if (m_file) {
      m_file->commit();
    }
  }

private:
  std::unique_ptr<util::PendingFile> m_file;
};

void require(const std::string& value, const std::string& option) {
  if (value.empty()) {
    throw Error(Exit::usage, option + " is required", "see the command's --help");
  }
}

} // namespace

crypto::esdk::Context parse_context(const std::vector<std::string>& pairs) {
  crypto::esdk::Context ctx;
  for (const std::string& p : pairs) {
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(Exit::usage, "--context takes key=value, not '" + p + "'",
                  "write e.g. --context purpose=archive");
    }
    ctx[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return ctx;
}

int run_encrypt(const EncryptOptions& opt) {
  if (opt.recipients.empty()) {
    throw Error(Exit::usage, "--recipient is required",
                "pass a public key file, e.g. --recipient archive.pub.pem");
  }
  require(opt.key_namespace, "--key-namespace");
  require(opt.key_name, "--key-name");
  std::vector<crypto::RsaKey> keys;
  for (const std::string& r : opt.recipients) {
    keys.push_back(crypto::load_public_key(r));
  }
  crypto::esdk::EncryptParams params;
  for (const crypto::RsaKey& k : keys) {
    params.recipients.push_back({opt.key_namespace, opt.key_name, &k});
  }
  params.context = parse_context(opt.context);
  params.frame_length = opt.frame_length;
  Output out(opt.out, 0600);
  unsigned long long in_bytes = 0;
  crypto::esdk::Encryptor enc(params, [&](const unsigned char* p, size_t n) { out.write(p, n); });
  read_stream(opt.in, [&](const unsigned char* p, size_t n) {
    enc.update(p, n);
    in_bytes += n;
  });
  enc.finish();
  out.commit();
  log::event(
      log::Level::info, "encrypt.done",
      {{"bytes", in_bytes}, {"recipients", keys.size()}, {"frame_length", opt.frame_length}});
  return 0;
}

int run_decrypt(const DecryptOptions& opt) {
  require(opt.private_key, "--private-key");
  require(opt.key_namespace, "--key-namespace");
  require(opt.key_name, "--key-name");
  crypto::RsaKey key = crypto::load_private_key(opt.private_key);
  crypto::esdk::DecryptParams params;
  params.keys.push_back({opt.key_namespace, opt.key_name, &key});
  crypto::esdk::Context required = parse_context(opt.context);
  Output out(opt.out, 0600);
  unsigned long long out_bytes = 0;
  crypto::esdk::Decryptor dec(params, [&](const unsigned char* p, size_t n) {
    out.write(p, n);
    out_bytes += n;
  });
  bool context_checked = false;
  read_stream(opt.in, [&](const unsigned char* p, size_t n) {
    dec.update(p, n);
    if (!context_checked && dec.header_read()) {
      context_checked = true;
      for (const auto& [k, v] : required) {
        auto it = dec.context().find(k);
        if (it == dec.context().end() || it->second != v) {
          throw Error(Exit::data, "the message's encryption context lacks " + k + "=" + v,
                      "check you are decrypting the file you meant to");
        }
      }
    }
  });
  dec.finish();
  out.commit();
  log::event(log::Level::info, "decrypt.done",
             {{"bytes", out_bytes}, {"context_keys", dec.context().size()}});
  return 0;
}

int run_keygen(const std::string& out_private, const std::string& out_public) {
  require(out_private, "--out-private");
  require(out_public, "--out-public");
  crypto::generate_key_pair(out_private, out_public);
  log::event(log::Level::info, "keygen.done",
             {{"bits", 4096}, {"private", out_private}, {"public", out_public}});
  return 0;
}

} // namespace lethe::jobs::crypt
