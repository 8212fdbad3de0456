#include "worker/crypto/hash.hpp"

#include "worker/util/error.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace lethe::crypto {

Digest sha256(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

Digest hmac_sha256(std::string_view key, std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    throw Error(Exit::internal, "HMAC-SHA256 failed in OpenSSL");
  }
  return out;
}

std::string hex(const Digest& d) {
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(d.size() * 2);
  for (std::uint8_t b : d) {
    out += k_digits[b >> 4];
    out += k_digits[b & 0xf];
  }
  return out;
}

Sha256::Sha256() : m_ctx(EVP_MD_CTX_new()) {
  if (m_ctx == nullptr ||
      EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(m_ctx), EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(m_ctx));
    throw Error(Exit::internal, "SHA-256 initialisation failed in OpenSSL");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(m_ctx));
}

void Sha256::update(std::string_view data) {
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(m_ctx), data.data(), data.size()) != 1) {
    throw Error(Exit::internal, "SHA-256 update failed in OpenSSL");
  }
}

Digest Sha256::finish() {
  Digest out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(m_ctx), out.data(), &len) != 1 ||
      len != out.size()) {
    throw Error(Exit::internal, "SHA-256 finish failed in OpenSSL");
  }
  return out;
}

} // namespace lethe::crypto
