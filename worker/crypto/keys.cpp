#include "worker/crypto/keys.hpp"

#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lethe::crypto {
namespace {

EVP_PKEY* pkey(const RsaKey& k) {
  return static_cast<EVP_PKEY*>(k.get());
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) {
    return "unknown OpenSSL error";
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};

void require_rsa_size(const RsaKey& key, const std::string& where) {
  if (EVP_PKEY_get_base_id(pkey(key)) != EVP_PKEY_RSA) {
    throw Error(Exit::data, "key " + where + " is not an RSA key",
                "use an RSA key of 3072 or 4096 bits (`lethe keygen` makes one)");
  }
  int bits = key.bits();
  if (bits != 3072 && bits != 4096) {
    throw Error(Exit::data, "key " + where + " has " + std::to_string(bits) + " bits",
                "use an RSA key of 3072 or 4096 bits (`lethe keygen` makes one)");
  }
}

std::unique_ptr<EVP_PKEY_CTX, CtxFree> oaep_ctx(const RsaKey& key, bool encrypt) {
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(
      EVP_PKEY_CTX_new_from_pkey(nullptr, pkey(key), nullptr));
  if (!ctx ||
      (encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get())) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1) {
    throw Error(Exit::internal, "cannot set up RSA-OAEP-SHA256: " + openssl_error());
  }
  return ctx;
}

void write_new_file(const std::filesystem::path& path, const std::string& text, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    throw Error(errno == EEXIST ? Exit::cant_create : Exit::io,
                "cannot create " + path.string() + ": " + std::strerror(errno),
                errno == EEXIST ? "lethe never overwrites a key: choose another name or move the "
                                  "old key away first"
                                : "check the directory exists and is writable");
  }
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      ::close(fd);
      ::unlink(path.c_str());
      throw Error(Exit::io, "cannot write " + path.string() + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);
  if (::fsync(fd) != 0) {
    ::close(fd);
    throw Error(Exit::io, "cannot fsync " + path.string() + ": " + std::strerror(errno));
  }
  ::close(fd);
}

} // namespace

SecretBytes::~SecretBytes() {
  if (!m_bytes.empty()) {
    OPENSSL_cleanse(m_bytes.data(), m_bytes.size());
  }
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    if (!m_bytes.empty()) {
      OPENSSL_cleanse(m_bytes.data(), m_bytes.size());
    }
    m_bytes = std::move(other.m_bytes);
  }
  return *this;
}

void SecretBytes::resize(size_t n) {
  if (n < m_bytes.size()) {
    OPENSSL_cleanse(m_bytes.data() + n, m_bytes.size() - n);
  }
  // Growing may move the buffer: wipe the old one first by copying through a fresh vector.
  std::vector<unsigned char> grown(n);
  std::memcpy(grown.data(), m_bytes.data(), std::min(n, m_bytes.size()));
  if (!m_bytes.empty()) {
    OPENSSL_cleanse(m_bytes.data(), m_bytes.size());
  }
  m_bytes.swap(grown);
}

RsaKey::~RsaKey() {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(m_key));
}

RsaKey::RsaKey(RsaKey&& other) noexcept : m_key(other.m_key), m_private(other.m_private) {
  other.m_key = nullptr;
}

RsaKey& RsaKey::operator=(RsaKey&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(static_cast<EVP_PKEY*>(m_key));
    m_key = other.m_key;
    m_private = other.m_private;
    other.m_key = nullptr;
  }
  return *this;
}

int RsaKey::bits() const {
  return m_key == nullptr ? 0 : EVP_PKEY_get_bits(static_cast<EVP_PKEY*>(m_key));
}

RsaKey load_public_key(const std::filesystem::path& path) {
  std::string pem = util::read_file(path);
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (k == nullptr) {
    ERR_clear_error();
    throw Error(Exit::data, "public key " + path.string() + " is not a PEM public key",
                "pass the public half (BEGIN PUBLIC KEY) that `lethe keygen --out-public` wrote");
  }
  RsaKey key(k, false);
  require_rsa_size(key, path.string());
  return key;
}

RsaKey load_private_key(const std::string& path_or_credential) {
  std::filesystem::path path = path_or_credential;
  if (path_or_credential.find('/') == std::string::npos) {
    std::filesystem::path cred = util::systemd_credential(path_or_credential);
    if (!cred.empty()) {
      path = cred;
    }
  }
  util::Secret pem = util::read_secret_file(path, "private key");
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.c_str(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  pem.wipe();
  if (k == nullptr) {
    ERR_clear_error();
    throw Error(Exit::data,
                "private key " + path.string() + " is not an unencrypted PEM private key",
                "pass the private key file that `lethe keygen --out-private` wrote");
  }
  RsaKey key(k, true);
  require_rsa_size(key, path.string());
  return key;
}

RsaKey generate_rsa_key(int bits) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits));
  if (k == nullptr) {
    throw Error(Exit::internal, "RSA key generation failed: " + openssl_error());
  }
  return RsaKey(k, true);
}

RsaKey public_half(const RsaKey& key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PUBKEY(bio.get(), pkey(key)) != 1) {
    throw Error(Exit::internal, "cannot encode a public key: " + openssl_error());
  }
  EVP_PKEY* pub = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (pub == nullptr) {
    throw Error(Exit::internal, "cannot decode a public key: " + openssl_error());
  }
  return RsaKey(pub, false);
}

void generate_key_pair(const std::filesystem::path& private_out,
                       const std::filesystem::path& public_out) {
  RsaKey key = generate_rsa_key(4096);
  EVP_PKEY* k = pkey(key);
  auto pem_of = [&](bool priv) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_secmem()));
    int ok =
        priv ? PEM_write_bio_PKCS8PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr)
             : PEM_write_bio_PUBKEY(bio.get(), k);
    if (ok != 1) {
      throw Error(Exit::internal, "cannot encode the key as PEM: " + openssl_error());
    }
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
  };
  std::string priv = pem_of(true);
  try {
    write_new_file(private_out, priv, 0600);
  } catch (...) {
    OPENSSL_cleanse(priv.data(), priv.size());
    throw;
  }
  OPENSSL_cleanse(priv.data(), priv.size());
  write_new_file(public_out, pem_of(false), 0644);
}

std::string rsa_oaep_wrap(const RsaKey& key, const SecretBytes& data_key) {
  auto ctx = oaep_ctx(key, true);
  size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, data_key.data(), data_key.size()) != 1) {
    throw Error(Exit::internal, "RSA-OAEP wrap failed: " + openssl_error());
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                       data_key.data(), data_key.size()) != 1) {
    throw Error(Exit::internal, "RSA-OAEP wrap failed: " + openssl_error());
  }
  out.resize(len);
  return out;
}

bool rsa_oaep_unwrap(const RsaKey& key, const std::string& wrapped, SecretBytes& data_key) {
  auto ctx = oaep_ctx(key, false);
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(wrapped.data());
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in, wrapped.size()) != 1) {
    ERR_clear_error();
    return false;
  }
  SecretBytes out(len);
  if (EVP_PKEY_decrypt(ctx.get(), out.data(), &len, in, wrapped.size()) != 1) {
    ERR_clear_error();
    return false;
  }
  out.resize(len);
  data_key = std::move(out);
  return true;
}

void random_bytes(unsigned char* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    throw Error(Exit::internal, "the random number generator failed: " + openssl_error());
  }
}

} // namespace lethe::crypto
