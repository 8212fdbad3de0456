// RSA key material for the raw RSA keyring: public keys to wrap data keys (the worker holds
// only these), private keys to unwrap them (loaded only by an explicit restore or drill).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace lethe::crypto {

// Bytes that are wiped (OPENSSL_cleanse) when released: data keys and derived keys.
class SecretBytes {
public:
  SecretBytes() = default;
  explicit SecretBytes(size_t n) : m_bytes(n) {}
  ~SecretBytes();
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& other) noexcept : m_bytes(std::move(other.m_bytes)) {}
  SecretBytes& operator=(SecretBytes&& other) noexcept;

  unsigned char* data() noexcept { return m_bytes.data(); }
  const unsigned char* data() const noexcept { return m_bytes.data(); }
  size_t size() const noexcept { return m_bytes.size(); }
  void resize(size_t n);

private:
  std::vector<unsigned char> m_bytes;
};

// An RSA key (public, or a private key with its public half); frees the OpenSSL key.
class RsaKey {
public:
  RsaKey() = default;
  explicit RsaKey(void* evp_pkey, bool has_private) : m_key(evp_pkey), m_private(has_private) {}
  ~RsaKey();
  RsaKey(RsaKey&& other) noexcept;
  RsaKey& operator=(RsaKey&& other) noexcept;
  RsaKey(const RsaKey&) = delete;
  RsaKey& operator=(const RsaKey&) = delete;

  void* get() const noexcept { return m_key; }
  bool has_private() const noexcept { return m_private; }
  int bits() const;

private:
  void* m_key = nullptr; // EVP_PKEY*
  bool m_private = false;
};

// Reads a PEM public key (SubjectPublicKeyInfo) of 3072 or 4096 bits; Error(data) otherwise.
RsaKey load_public_key(const std::filesystem::path& path);

// Reads a PEM private key after checking the file is the running user's and private (exit 77).
// A bare name (no '/') is looked up in systemd's $CREDENTIALS_DIRECTORY first.
RsaKey load_private_key(const std::string& path_or_credential);

// A new RSA private key of `bits` bits (3072 or 4096).
RsaKey generate_rsa_key(int bits);

// The public half of `key`.
RsaKey public_half(const RsaKey& key);

// Makes an RSA-4096 pair: the private key (PKCS#8 PEM) created 0600 and never overwritten,
// the public key (SubjectPublicKeyInfo PEM) 0644.
void generate_key_pair(const std::filesystem::path& private_out,
                       const std::filesystem::path& public_out);

// RSA-OAEP with SHA-256 and MGF1-SHA-256, as the raw RSA keyring specifies.
std::string rsa_oaep_wrap(const RsaKey& key, const SecretBytes& data_key);
// Unwraps; returns false (no exception) when this key cannot decrypt `wrapped`.
bool rsa_oaep_unwrap(const RsaKey& key, const std::string& wrapped, SecretBytes& data_key);

// Fills `out` with cryptographically secure random bytes.
void random_bytes(unsigned char* out, size_t n);

} // namespace lethe::crypto
