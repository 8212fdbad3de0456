// The pieces of the ESDK message format shared by the header parser, the frame code, the
// encryptor and the decryptor (worker/crypto/esdk_*.cpp). Not for use outside worker/crypto.
#pragma once

#include "worker/crypto/esdk.hpp"

#include <array>
#include <cstring>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <optional>

namespace lethe::crypto::esdk::detail {

inline constexpr size_t k_id_len = 32;
inline constexpr size_t k_key_len = 32;
inline constexpr size_t k_iv_len = 12;
inline constexpr size_t k_tag_len = 16;
inline constexpr std::uint32_t k_final_marker = 0xFFFFFFFF;
inline constexpr const char* k_frame_string = "AWSKMSEncryptionClient Frame";
inline constexpr const char* k_final_string = "AWSKMSEncryptionClient Final Frame";
inline constexpr const char* k_reserved_prefix = "aws-crypto-";

using Bytes = std::vector<unsigned char>;

struct WrappedKey {
  std::string provider_id;
  std::string provider_info;
  std::string ciphertext;
};

struct Header {
  std::array<unsigned char, k_id_len> message_id{};
  Context context;
  std::vector<WrappedKey> wrapped;
  std::uint32_t frame_length = 0;
  std::array<unsigned char, k_key_len> commitment{};
  std::array<unsigned char, k_tag_len> tag{};
  size_t body_length = 0;  // bytes covered by the header tag
  size_t total_length = 0; // including the tag
};

void put_u16(Bytes& out, size_t v);
void put_u32(Bytes& out, std::uint32_t v);
void put_u64(Bytes& out, std::uint64_t v);
void put_bytes(Bytes& out, const void* p, size_t n);
void put_string16(Bytes& out, const std::string& s);

// Reads big-endian fields; `ok` turns false when the input ends first (not an error: the rest
// of the message has not arrived yet).
struct Reader {
  const unsigned char* p;
  size_t n;
  size_t pos = 0;
  bool ok = true;

  bool have(size_t k) {
    ok = ok && n - pos >= k;
    return ok;
  }
  std::uint64_t uint(size_t bytes) {
    if (!have(bytes)) {
      return 0;
    }
    std::uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i) {
      v = (v << 8) | p[pos + i];
    }
    pos += bytes;
    return v;
  }
  std::string string16() {
    size_t len = static_cast<size_t>(uint(2));
    if (!have(len)) {
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p + pos), len);
    pos += len;
    return s;
  }
  template <size_t N>
  void copy(std::array<unsigned char, N>& out) {
    if (have(N)) {
      std::memcpy(out.data(), p + pos, N);
      pos += N;
    }
  }
};

// The header at p[0..n): nullopt while incomplete; FormatError when wrong.
std::optional<Header> parse_header(const unsigned char* p, size_t n, size_t max_wrapped);

[[noreturn]] void openssl_failure(const char* what);

struct DerivedKeys {
  SecretBytes encryption{k_key_len};
  std::array<unsigned char, k_key_len> commitment{};
};

DerivedKeys derive(const SecretBytes& data_key, const std::array<unsigned char, k_id_len>& id);

// AES-256-GCM with one key, many IVs.
class Gcm {
public:
  Gcm(const SecretBytes& key, bool encrypt) : m_ctx(EVP_CIPHER_CTX_new()) {
    if (m_ctx == nullptr ||
        EVP_CipherInit_ex(m_ctx, EVP_aes_256_gcm(), nullptr, key.data(), nullptr, encrypt) != 1) {
      openssl_failure("AES-256-GCM init");
    }
  }
  ~Gcm() { EVP_CIPHER_CTX_free(m_ctx); }
  Gcm(const Gcm&) = delete;
  Gcm& operator=(const Gcm&) = delete;

  void seal(const unsigned char* iv, const Bytes& aad, const unsigned char* in, size_t n,
            unsigned char* out, unsigned char* tag) {
    int len = 0;
    if (EVP_CipherInit_ex(m_ctx, nullptr, nullptr, nullptr, iv, 1) != 1 ||
        EVP_CipherUpdate(m_ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
        (n > 0 && EVP_CipherUpdate(m_ctx, out, &len, in, static_cast<int>(n)) != 1) ||
        EVP_CipherFinal_ex(m_ctx, out + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(m_ctx, EVP_CTRL_GCM_GET_TAG, k_tag_len, tag) != 1) {
      openssl_failure("AES-256-GCM encrypt");
    }
  }

  bool open(const unsigned char* iv, const Bytes& aad, const unsigned char* in, size_t n,
            unsigned char* out, const unsigned char* tag) {
    int len = 0;
    if (EVP_CipherInit_ex(m_ctx, nullptr, nullptr, nullptr, iv, 0) != 1 ||
        EVP_CipherUpdate(m_ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
        (n > 0 && EVP_CipherUpdate(m_ctx, out, &len, in, static_cast<int>(n)) != 1) ||
        EVP_CIPHER_CTX_ctrl(m_ctx, EVP_CTRL_GCM_SET_TAG, k_tag_len,
                            const_cast<unsigned char*>(tag)) != 1) {
      openssl_failure("AES-256-GCM decrypt");
    }
    bool ok = EVP_CipherFinal_ex(m_ctx, out + n, &len) == 1;
    ERR_clear_error();
    return ok;
  }

private:
  EVP_CIPHER_CTX* m_ctx;
};

Bytes frame_aad(const std::array<unsigned char, k_id_len>& id, bool final, std::uint32_t seq,
                std::uint64_t length);
std::array<unsigned char, k_iv_len> frame_iv(std::uint32_t seq);

} // namespace lethe::crypto::esdk::detail
