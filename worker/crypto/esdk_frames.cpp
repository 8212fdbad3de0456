// The ESDK key derivation, AES-256-GCM and per-frame AAD and IV.
#include "worker/crypto/esdk_internal.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

namespace lethe::crypto::esdk::detail {

[[noreturn]] void openssl_failure(const char* what) {
  ERR_clear_error();
  throw Error(Exit::internal, std::string("OpenSSL failed: ") + what);
}

namespace {

void hkdf_sha512(const SecretBytes& key, const unsigned char* salt, size_t salt_len,
                 const unsigned char* info, size_t info_len, unsigned char* out, size_t out_len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  if (ctx == nullptr) {
    openssl_failure("HKDF");
  }
  char digest[] = "SHA512";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(key.data()),
                                        key.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<unsigned char*>(salt),
                                        salt_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<unsigned char*>(info),
                                        info_len),
      OSSL_PARAM_construct_end()};
  int rc = EVP_KDF_derive(ctx, out, out_len, params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) {
    openssl_failure("HKDF derive");
  }
}

} // namespace

DerivedKeys derive(const SecretBytes& data_key, const std::array<unsigned char, k_id_len>& id) {
  DerivedKeys d;
  static const unsigned char k_derive_info[] = {0x04, 0x78, 'D', 'E', 'R', 'I',
                                                'V',  'E',  'K', 'E', 'Y'};
  static const unsigned char k_commit_info[] = {'C', 'O', 'M', 'M', 'I', 'T', 'K', 'E', 'Y'};
  hkdf_sha512(data_key, id.data(), id.size(), k_derive_info, sizeof k_derive_info,
              d.encryption.data(), k_key_len);
  hkdf_sha512(data_key, id.data(), id.size(), k_commit_info, sizeof k_commit_info,
              d.commitment.data(), k_key_len);
  return d;
}

Bytes frame_aad(const std::array<unsigned char, k_id_len>& id, bool final, std::uint32_t seq,
                std::uint64_t length) {
  Bytes aad;
  aad.reserve(k_id_len + 48);
  put_bytes(aad, id.data(), id.size());
  const char* s = final ? k_final_string : k_frame_string;
  put_bytes(aad, s, std::strlen(s));
  put_u32(aad, seq);
  put_u64(aad, length);
  return aad;
}

std::array<unsigned char, k_iv_len> frame_iv(std::uint32_t seq) {
  std::array<unsigned char, k_iv_len> iv{};
  for (int i = 0; i < 4; ++i) {
    iv[static_cast<size_t>(8 + i)] = static_cast<unsigned char>(seq >> (24 - 8 * i));
  }
  return iv;
}

} // namespace lethe::crypto::esdk::detail
