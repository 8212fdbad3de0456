// The ESDK decryptor: a streaming state machine over header and frames.
#include "worker/crypto/esdk_internal.hpp"

#include <openssl/crypto.h>

namespace lethe::crypto::esdk {

using namespace detail;

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

} // namespace lethe::crypto::esdk
