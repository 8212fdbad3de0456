// The ESDK encryptor: header with wrapped data keys, then framed AES-256-GCM.
#include "worker/crypto/esdk_internal.hpp"

#include <openssl/crypto.h>

namespace lethe::crypto::esdk {

using namespace detail;

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

} // namespace lethe::crypto::esdk
