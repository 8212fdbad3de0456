#include "worker/crypto/esdk.hpp"

#include <array>
#include <cstring>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <optional>

namespace lethe::crypto::esdk {
namespace {

constexpr size_t k_id_len = 32;
constexpr size_t k_key_len = 32;
constexpr size_t k_iv_len = 12;
constexpr size_t k_tag_len = 16;
constexpr std::uint32_t k_final_marker = 0xFFFFFFFF;
constexpr const char* k_frame_string = "AWSKMSEncryptionClient Frame";
constexpr const char* k_final_string = "AWSKMSEncryptionClient Final Frame";
constexpr const char* k_reserved_prefix = "aws-crypto-";

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

void put_u16(Bytes& out, size_t v) {
  out.push_back(static_cast<unsigned char>(v >> 8));
  out.push_back(static_cast<unsigned char>(v));
}
void put_u32(Bytes& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) {
    out.push_back(static_cast<unsigned char>(v >> s));
  }
}
void put_u64(Bytes& out, std::uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) {
    out.push_back(static_cast<unsigned char>(v >> s));
  }
}
void put_bytes(Bytes& out, const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  out.insert(out.end(), b, b + n);
}
void put_string16(Bytes& out, const std::string& s) {
  put_u16(out, s.size());
  put_bytes(out, s.data(), s.size());
}

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

bool legacy_suite(std::uint64_t id) {
  switch (id) {
  case 0x0014:
  case 0x0046:
  case 0x0078:
  case 0x0114:
  case 0x0146:
  case 0x0178:
  case 0x0214:
  case 0x0346:
  case 0x0378:
    return true;
  default:
    return false;
  }
}

Context parse_context(const unsigned char* p, size_t n) {
  Reader r{p, n};
  size_t count = static_cast<size_t>(r.uint(2));
  if (!r.ok || count == 0) {
    throw FormatError(Fault::malformed_header, "the encryption context says it has no pairs");
  }
  Context ctx;
  std::string previous;
  for (size_t i = 0; i < count; ++i) {
    std::string key = r.string16();
    std::string value = r.string16();
    if (!r.ok) {
      throw FormatError(Fault::malformed_header, "the encryption context is cut short");
    }
    if (i > 0 && !(previous < key)) {
      throw FormatError(Fault::malformed_header,
                        "encryption context keys are duplicated or not in byte order");
    }
    if (key.rfind(k_reserved_prefix, 0) == 0) {
      throw FormatError(Fault::reserved_context_key,
                        "the encryption context holds the reserved key '" + key +
                            "', which an unsigned message must not carry");
    }
    previous = key;
    ctx.emplace(std::move(key), std::move(value));
  }
  if (r.pos != n) {
    throw FormatError(Fault::malformed_header, "bytes left over after the encryption context");
  }
  return ctx;
}

// The header at p[0..n): nullopt while incomplete; FormatError when wrong.
std::optional<Header> parse_header(const unsigned char* p, size_t n, size_t max_wrapped) {
  Reader r{p, n};
  std::uint64_t version = r.uint(1);
  if (!r.ok) {
    return std::nullopt;
  }
  if (version == 1) {
    throw FormatError(Fault::legacy_suite, "message format version 1 carries only suites without "
                                           "key commitment");
  }
  if (version != 2) {
    throw FormatError(Fault::bad_version,
                      "unknown message format version " + std::to_string(version));
  }
  std::uint64_t suite = r.uint(2);
  if (!r.ok) {
    return std::nullopt;
  }
  if (legacy_suite(suite)) {
    throw FormatError(Fault::legacy_suite, "algorithm suite without key commitment");
  }
  if (suite != k_suite_id) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%04llx", static_cast<unsigned long long>(suite));
    throw FormatError(Fault::unsupported_suite,
                      std::string("algorithm suite ") + buf + " is not supported (only 0x0478)");
  }
  Header h;
  r.copy(h.message_id);
  size_t aad_len = static_cast<size_t>(r.uint(2));
  if (!r.have(aad_len)) {
    return std::nullopt;
  }
  if (aad_len > 0) {
    h.context = parse_context(p + r.pos, aad_len);
  }
  r.pos += aad_len;
  size_t count = static_cast<size_t>(r.uint(2));
  if (!r.ok) {
    return std::nullopt;
  }
  if (count == 0) {
    throw FormatError(Fault::malformed_header, "the message carries no wrapped data key");
  }
  if (count > max_wrapped) {
    throw FormatError(Fault::too_many_wrapped_keys,
                      "the message carries " + std::to_string(count) +
                          " wrapped data keys, more than the limit of " +
                          std::to_string(max_wrapped));
  }
  for (size_t i = 0; i < count; ++i) {
    WrappedKey k;
    k.provider_id = r.string16();
    k.provider_info = r.string16();
    k.ciphertext = r.string16();
    if (!r.ok) {
      return std::nullopt;
    }
    h.wrapped.push_back(std::move(k));
  }
  std::uint64_t content_type = r.uint(1);
  h.frame_length = static_cast<std::uint32_t>(r.uint(4));
  r.copy(h.commitment);
  if (!r.ok) {
    return std::nullopt;
  }
  if (content_type != 2) {
    throw FormatError(Fault::malformed_header,
                      "content type " + std::to_string(content_type) + " is not framed (2)");
  }
  if (h.frame_length == 0 || h.frame_length > k_max_frame_length) {
    throw FormatError(Fault::malformed_header,
                      "frame length " + std::to_string(h.frame_length) + " is out of range");
  }
  h.body_length = r.pos;
  r.copy(h.tag);
  if (!r.ok) {
    return std::nullopt;
  }
  h.total_length = r.pos;
  return h;
}

[[noreturn]] void openssl_failure(const char* what) {
  ERR_clear_error();
  throw Error(Exit::internal, std::string("OpenSSL failed: ") + what);
}

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

struct DerivedKeys {
  SecretBytes encryption{k_key_len};
  std::array<unsigned char, k_key_len> commitment{};
};

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

} // namespace

const char* fault_name(Fault f) {
  switch (f) {
  case Fault::truncated:
    return "truncated";
  case Fault::bad_version:
    return "bad_version";
  case Fault::legacy_suite:
    return "legacy_suite";
  case Fault::unsupported_suite:
    return "unsupported_suite";
  case Fault::malformed_header:
    return "malformed_header";
  case Fault::reserved_context_key:
    return "reserved_context_key";
  case Fault::too_many_wrapped_keys:
    return "too_many_wrapped_keys";
  case Fault::no_matching_key:
    return "no_matching_key";
  case Fault::wrong_key:
    return "wrong_key";
  case Fault::commitment_mismatch:
    return "commitment_mismatch";
  case Fault::header_auth_failed:
    return "header_auth_failed";
  case Fault::bad_sequence:
    return "bad_sequence";
  case Fault::bad_frame_iv:
    return "bad_frame_iv";
  case Fault::final_frame_too_long:
    return "final_frame_too_long";
  case Fault::frame_auth_failed:
    return "frame_auth_failed";
  case Fault::trailing_bytes:
    return "trailing_bytes";
  }
  return "unknown";
}

FormatError::FormatError(Fault fault, const std::string& detail)
    : Error(
          Exit::data,
          "encrypted message refused (" + std::string(fault_name(fault)) + "): " + detail,
          fault == Fault::no_matching_key || fault == Fault::wrong_key
              ? "pass the private key, --key-namespace and --key-name the message was encrypted to"
              : "the file is damaged, truncated or was altered: restore it from another copy"),
      m_fault(fault) {}

// ---------------------------------------------------------------------------------------------

struct Encryptor::Impl {
  Sink out;
  std::uint32_t frame_length;
  std::array<unsigned char, k_id_len> message_id{};
  std::unique_ptr<Gcm> gcm;
  Bytes buffer;
  Bytes frame;
  std::uint32_t seq = 1;
  bool finished = false;

  void emit(const unsigned char* data, size_t n, bool final) {
    if (seq == k_final_marker) {
      throw Error(Exit::data, "message too long: frame sequence numbers exhausted",
                  "use a larger --frame-length");
    }
    frame.clear();
    if (final) {
      put_u32(frame, k_final_marker);
    }
    put_u32(frame, seq);
    auto iv = frame_iv(seq);
    put_bytes(frame, iv.data(), iv.size());
    if (final) {
      put_u32(frame, static_cast<std::uint32_t>(n));
    }
    size_t at = frame.size();
    frame.resize(at + n + k_tag_len);
    gcm->seal(iv.data(), frame_aad(message_id, final, seq, n), data, n, frame.data() + at,
              frame.data() + at + n);
    out(frame.data(), frame.size());
    ++seq;
  }
};

Encryptor::Encryptor(const EncryptParams& params, Sink out) : m_impl(std::make_unique<Impl>()) {
  Impl& m = *m_impl;
  m.out = std::move(out);
  m.frame_length = params.frame_length;
  if (params.recipients.empty()) {
    throw Error(Exit::usage, "no recipient public key", "pass --recipient PUB.pem at least once");
  }
  if (m.frame_length == 0 || m.frame_length > k_max_frame_length) {
    throw Error(Exit::usage, "frame length must be between 1 and 2147483647",
                "the default, 65536, suits files of any size");
  }
  Bytes header;
  header.push_back(0x02);
  put_u16(header, k_suite_id);
  random_bytes(m.message_id.data(), m.message_id.size());
  put_bytes(header, m.message_id.data(), m.message_id.size());
  Bytes aad;
  if (!params.context.empty()) {
    put_u16(aad, params.context.size());
    for (const auto& [k, v] : params.context) {
      if (k.rfind(k_reserved_prefix, 0) == 0) {
        throw Error(Exit::usage, "encryption context key '" + k + "' is reserved",
                    "keys starting with aws-crypto- belong to the AWS Encryption SDK");
      }
      if (k.size() > 0xffff || v.size() > 0xffff) {
        throw Error(Exit::usage, "an encryption context entry is longer than 65535 bytes");
      }
      put_string16(aad, k);
      put_string16(aad, v);
    }
    if (aad.size() > 0xffff) {
      throw Error(Exit::usage, "the encryption context is longer than 65535 bytes");
    }
  }
  put_u16(header, aad.size());
  header.insert(header.end(), aad.begin(), aad.end());
  SecretBytes data_key(k_key_len);
  random_bytes(data_key.data(), data_key.size());
  put_u16(header, params.recipients.size());
  for (const WrappingKey& r : params.recipients) {
    put_string16(header, r.key_namespace);
    put_string16(header, r.key_name);
    put_string16(header, rsa_oaep_wrap(*r.key, data_key));
  }
  header.push_back(0x02);
  put_u32(header, m.frame_length);
  DerivedKeys keys = derive(data_key, m.message_id);
  put_bytes(header, keys.commitment.data(), keys.commitment.size());
  m.gcm = std::make_unique<Gcm>(keys.encryption, true);
  std::array<unsigned char, k_iv_len> zero_iv{};
  std::array<unsigned char, k_tag_len> tag{};
  m.gcm->seal(zero_iv.data(), header, nullptr, 0, nullptr, tag.data());
  put_bytes(header, tag.data(), tag.size());
  m.out(header.data(), header.size());
  m.buffer.reserve(m.frame_length);
}

Encryptor::~Encryptor() {
  if (m_impl && !m_impl->buffer.empty()) {
    OPENSSL_cleanse(m_impl->buffer.data(), m_impl->buffer.size());
  }
}

void Encryptor::update(const unsigned char* data, size_t n) {
  Impl& m = *m_impl;
  while (n > 0) {
    // A frame is written only once more input follows it, so the last bytes always go into
    // the final frame (a message never ends with an empty final frame after a full one).
    if (m.buffer.size() == m.frame_length) {
      m.emit(m.buffer.data(), m.buffer.size(), false);
      m.buffer.clear();
    }
    if (m.buffer.empty() && n > m.frame_length) {
      m.emit(data, m.frame_length, false);
      data += m.frame_length;
      n -= m.frame_length;
      continue;
    }
    size_t take = std::min(n, static_cast<size_t>(m.frame_length) - m.buffer.size());
    m.buffer.insert(m.buffer.end(), data, data + take);
    data += take;
    n -= take;
  }
}

void Encryptor::finish() {
  Impl& m = *m_impl;
  if (m.finished) {
    return;
  }
  m.emit(m.buffer.data(), m.buffer.size(), true);
  OPENSSL_cleanse(m.buffer.data(), m.buffer.size());
  m.buffer.clear();
  m.finished = true;
}

// ---------------------------------------------------------------------------------------------

struct Decryptor::Impl {
  DecryptParams params;
  Sink out;
  Bytes buf;
  size_t pos = 0;
  enum class State { header, body, done } state = State::header;
  Header header;
  std::unique_ptr<Gcm> gcm;
  std::uint32_t seq = 1;
  Bytes plain;

  void open_header() {
    std::optional<Header> h = parse_header(buf.data(), buf.size(), params.max_wrapped_keys);
    if (!h) {
      return;
    }
    header = std::move(*h);
    if (header.frame_length > params.max_frame_length) {
      throw FormatError(Fault::malformed_header, "frame length " +
                                                     std::to_string(header.frame_length) +
                                                     " is above this reader's limit of " +
                                                     std::to_string(params.max_frame_length));
    }
    SecretBytes data_key;
    bool matched = false;
    bool unwrapped = false;
    for (const WrappedKey& w : header.wrapped) {
      for (const WrappingKey& k : params.keys) {
        if (w.provider_id != k.key_namespace || w.provider_info != k.key_name) {
          continue;
        }
        matched = true;
        if (rsa_oaep_unwrap(*k.key, w.ciphertext, data_key) && data_key.size() == k_key_len) {
          unwrapped = true;
          break;
        }
      }
      if (unwrapped) {
        break;
      }
    }
    if (!matched) {
      throw FormatError(Fault::no_matching_key,
                        "no wrapped data key is for the given key namespace and name");
    }
    if (!unwrapped) {
      throw FormatError(Fault::wrong_key,
                        "the private key does not unwrap any data key wrapped for its name");
    }
    DerivedKeys keys = derive(data_key, header.message_id);
    if (CRYPTO_memcmp(keys.commitment.data(), header.commitment.data(), k_key_len) != 0) {
      throw FormatError(Fault::commitment_mismatch,
                        "the key commitment does not match the data key");
    }
    gcm = std::make_unique<Gcm>(keys.encryption, false);
    Bytes body(buf.begin(), buf.begin() + static_cast<long>(header.body_length));
    std::array<unsigned char, k_iv_len> zero_iv{};
    if (!gcm->open(zero_iv.data(), body, nullptr, 0, nullptr, header.tag.data())) {
      throw FormatError(Fault::header_auth_failed, "the header does not authenticate");
    }
    pos = header.total_length;
    state = State::body;
  }

  // Decrypts the next whole frame in buf; false when more bytes are needed.
  // Decrypts the next whole frame in window[0..n); returns the bytes it took, 0 when the
  // window does not hold a whole frame yet.
  size_t next_frame(const unsigned char* window, size_t n) {
    Reader r{window, n};
    std::uint32_t first = static_cast<std::uint32_t>(r.uint(4));
    if (!r.ok) {
      return 0;
    }
    bool final = first == k_final_marker;
    std::uint32_t frame_seq = final ? static_cast<std::uint32_t>(r.uint(4)) : first;
    std::array<unsigned char, k_iv_len> iv{};
    r.copy(iv);
    std::uint64_t length = final ? r.uint(4) : header.frame_length;
    if (!r.ok) {
      return 0;
    }
    if (frame_seq != seq) {
      throw FormatError(Fault::bad_sequence, "frame " + std::to_string(frame_seq) +
                                                 " where frame " + std::to_string(seq) +
                                                 " was expected");
    }
    if (iv != frame_iv(seq)) {
      throw FormatError(Fault::bad_frame_iv, "frame " + std::to_string(seq) + " has a wrong IV");
    }
    if (final && length > header.frame_length) {
      throw FormatError(Fault::final_frame_too_long, "the final frame holds " +
                                                         std::to_string(length) +
                                                         " bytes, more than the frame length " +
                                                         std::to_string(header.frame_length));
    }
    if (!r.have(length + k_tag_len)) {
      return 0;
    }
    const unsigned char* ct = r.p + r.pos;
    plain.resize(length);
    if (!gcm->open(iv.data(), frame_aad(header.message_id, final, seq, length), ct, length,
                   plain.data(), ct + length)) {
      OPENSSL_cleanse(plain.data(), plain.size());
      throw FormatError(Fault::frame_auth_failed,
                        "frame " + std::to_string(seq) + " does not authenticate");
    }
    out(plain.data(), plain.size());
    OPENSSL_cleanse(plain.data(), plain.size());
    ++seq;
    if (final) {
      state = State::done;
    }
    return r.pos + length + k_tag_len;
  }
};

Decryptor::Decryptor(const DecryptParams& params, Sink out) : m_impl(std::make_unique<Impl>()) {
  m_impl->params = params;
  m_impl->out = std::move(out);
}

Decryptor::~Decryptor() = default;

void Decryptor::update(const unsigned char* data, size_t n) {
  Impl& m = *m_impl;
  if (n == 0) {
    return;
  }
  if (m.state == Impl::State::done) {
    throw FormatError(Fault::trailing_bytes, "bytes follow the final frame");
  }
  if (m.state == Impl::State::header) {
    m.buf.insert(m.buf.end(), data, data + n);
    m.open_header();
    if (m.state == Impl::State::header) {
      return;
    }
    // Continue from what follows the header in the buffer.
    m.buf.erase(m.buf.begin(), m.buf.begin() + static_cast<long>(m.pos));
    m.pos = 0;
    data = nullptr;
    n = 0;
  }
  // Whole frames are decrypted straight from the caller's bytes; only a frame split across
  // calls is gathered in `buf` (at most one frame), so memory stays at about one frame and
  // most input is never copied.
  auto drain = [&m](const unsigned char* p, size_t len) {
    size_t used = 0;
    while (m.state == Impl::State::body) {
      size_t took = m.next_frame(p + used, len - used);
      if (took == 0) {
        break;
      }
      used += took;
    }
    return used;
  };
  const size_t max_frame = 4 + 4 + k_iv_len + 4 + m.header.frame_length + k_tag_len;
  while (m.state == Impl::State::body) {
    if (m.buf.empty()) {
      size_t used = drain(data, n);
      data += used;
      n -= used;
      if (m.state == Impl::State::body) {
        m.buf.assign(data, data + n);
        n = 0;
      }
      break;
    }
    size_t take = std::min(n, max_frame > m.buf.size() ? max_frame - m.buf.size() : size_t{0});
    m.buf.insert(m.buf.end(), data, data + take);
    data += take;
    n -= take;
    size_t used = drain(m.buf.data(), m.buf.size());
    m.buf.erase(m.buf.begin(), m.buf.begin() + static_cast<long>(used));
    if (used == 0 && n == 0) {
      break; // the frame needs bytes that have not arrived yet
    }
  }
  if (m.state == Impl::State::done && n > 0) {
    throw FormatError(Fault::trailing_bytes, "bytes follow the final frame");
  }
  if (m.state == Impl::State::done && !m.buf.empty()) {
    throw FormatError(Fault::trailing_bytes, "bytes follow the final frame");
  }
}

void Decryptor::finish() {
  if (m_impl->state != Impl::State::done) {
    throw FormatError(Fault::truncated, m_impl->state == Impl::State::header
                                            ? "the message ends inside its header"
                                            : "the message ends before its final frame");
  }
}

const Context& Decryptor::context() const {
  return m_impl->header.context;
}

bool Decryptor::header_read() const {
  return m_impl->state != Impl::State::header;
}

size_t parse_header_only(const unsigned char* data, size_t n, size_t max_wrapped_keys,
                         Context* context) {
  std::optional<Header> h = parse_header(data, n, max_wrapped_keys);
  if (!h) {
    return 0;
  }
  if (context != nullptr) {
    *context = h->context;
  }
  return h->total_length;
}

} // namespace lethe::crypto::esdk
