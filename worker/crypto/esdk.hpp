// AWS Encryption SDK messages (format version 2, algorithm suite 0x0478: AES-256-GCM,
// HKDF-SHA512, key commitment, no signature; framed body), streamed in constant memory, with
// the raw RSA keyring (RSA-OAEP-SHA256). Every file lethe writes that holds PII is one of these
// messages, so an auditor can open it with the official SDK (C7, C10).
#pragma once

#include "worker/crypto/keys.hpp"
#include "worker/util/error.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace lethe::crypto::esdk {

inline constexpr std::uint16_t k_suite_id = 0x0478;
inline constexpr std::uint32_t k_default_frame_length = 64 * 1024;
inline constexpr std::uint32_t k_max_frame_length = 0x7fffffff;
inline constexpr size_t k_default_max_wrapped_keys = 16;
// Decryption buffers one frame before its tag is checked; larger frames are refused.
inline constexpr std::uint32_t k_default_max_decrypt_frame = 64U << 20;

// The encryption context: non-secret facts bound to the message (never PII). std::map orders
// keys by their raw bytes, which is the order the format requires.
using Context = std::map<std::string, std::string>;

// Receives output bytes (ciphertext from Encryptor, verified plaintext from Decryptor).
using Sink = std::function<void(const unsigned char*, size_t)>;

// Why a message was refused; each has its own message text.
enum class Fault {
  truncated,
  bad_version,
  legacy_suite,
  unsupported_suite,
  malformed_header,
  reserved_context_key,
  too_many_wrapped_keys,
  no_matching_key,
  wrong_key,
  commitment_mismatch,
  header_auth_failed,
  bad_sequence,
  bad_frame_iv,
  final_frame_too_long,
  frame_auth_failed,
  trailing_bytes,
};

const char* fault_name(Fault f);

// A refused message: exit 65 (bad data), never carrying plaintext or key bytes.
class FormatError : public Error {
public:
  FormatError(Fault fault, const std::string& detail);
  Fault fault() const noexcept { return m_fault; }

private:
  Fault m_fault;
};

// One wrapping key: the raw RSA keyring's namespace (provider id) and name (provider info).
struct WrappingKey {
  std::string key_namespace;
  std::string key_name;
  const RsaKey* key = nullptr;
};

struct EncryptParams {
  std::vector<WrappingKey> recipients; // public keys; at least one
  Context context;
  std::uint32_t frame_length = k_default_frame_length;
};

// Streams plaintext in, message bytes out. Memory stays at about one frame.
class Encryptor {
public:
  Encryptor(const EncryptParams& params, Sink out);
  ~Encryptor();
  Encryptor(const Encryptor&) = delete;
  Encryptor& operator=(const Encryptor&) = delete;

  void update(const unsigned char* data, size_t n);
  // Writes the final frame; the message is complete after it.
  void finish();

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

struct DecryptParams {
  std::vector<WrappingKey> keys; // private keys; tried only on wrapped keys with the same names
  size_t max_wrapped_keys = k_default_max_wrapped_keys;
  std::uint32_t max_frame_length = k_default_max_decrypt_frame;
};

// Streams message bytes in; each frame's plaintext goes out only after its tag verified.
// Throws FormatError on the first thing wrong.
class Decryptor {
public:
  Decryptor(const DecryptParams& params, Sink out);
  ~Decryptor();
  Decryptor(const Decryptor&) = delete;
  Decryptor& operator=(const Decryptor&) = delete;

  void update(const unsigned char* data, size_t n);
  // Checks the message ended with its final frame.
  void finish();
  // The encryption context, once the header has been read and authenticated.
  const Context& context() const;
  bool header_read() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Parses and checks a header without any key (used by the fuzzer and `archive verify`):
// returns its length, 0 when `n` bytes are not yet a whole header; throws FormatError.
size_t parse_header_only(const unsigned char* data, size_t n, size_t max_wrapped_keys,
                         Context* context = nullptr);

} // namespace lethe::crypto::esdk
