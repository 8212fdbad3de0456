// The decrypt side refuses every damaged message, each fault with its own error; plaintext
// leaves only after its frame's tag verified.
#include "worker/crypto/esdk.hpp"

#include <catch2/catch.hpp>
#include <optional>

using namespace lethe::crypto;
using esdk::Fault;

namespace {

struct Keys {
  RsaKey priv = generate_rsa_key(3072);
  RsaKey pub = public_half(priv);
  RsaKey other = generate_rsa_key(3072);
};

const Keys& keys() {
  static const Keys k;
  return k;
}

std::string encrypt(const std::string& plain, std::uint32_t frame, const esdk::Context& ctx = {},
                    int copies = 1) {
  esdk::EncryptParams p;
  for (int i = 0; i < copies; ++i) {
    p.recipients.push_back({"lethe-test", "k1", &keys().pub});
  }
  p.context = ctx;
  p.frame_length = frame;
  std::string out;
  esdk::Encryptor e(p, [&](const unsigned char* d, size_t n) {
    out.append(reinterpret_cast<const char*>(d), n);
  });
  e.update(reinterpret_cast<const unsigned char*>(plain.data()), plain.size());
  e.finish();
  return out;
}

struct Outcome {
  std::optional<Fault> fault;
  std::string released; // plaintext handed out before the failure (or all of it)
};

Outcome decrypt(const std::string& msg, const RsaKey& key = keys().priv,
                const std::string& name = "k1", size_t feed = 0) {
  esdk::DecryptParams p;
  p.keys.push_back({"lethe-test", name, &key});
  Outcome o;
  esdk::Decryptor d(p, [&](const unsigned char* b, size_t n) {
    o.released.append(reinterpret_cast<const char*>(b), n);
  });
  try {
    const auto* bytes = reinterpret_cast<const unsigned char*>(msg.data());
    size_t step = feed == 0 ? msg.size() : feed;
    for (size_t at = 0; at < msg.size(); at += step) {
      d.update(bytes + at, std::min(step, msg.size() - at));
    }
    d.finish();
  } catch (const esdk::FormatError& e) {
    o.fault = e.fault();
    CHECK(e.code() == lethe::Exit::data);
  }
  return o;
}

std::string text(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + i % 26);
  }
  return s;
}

size_t header_length(const std::string& msg) {
  return esdk::parse_header_only(reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                 16);
}

} // namespace

TEST_CASE("esdk: round trips at frame boundaries, whole and byte by byte") {
  for (size_t n : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{5 * 64 + 3}}) {
    INFO(n);
    std::string msg = encrypt(text(n), 64, {{"purpose", "test"}});
    Outcome whole = decrypt(msg);
    CHECK_FALSE(whole.fault);
    CHECK(whole.released == text(n));
    Outcome bytewise = decrypt(msg, keys().priv, "k1", 1);
    CHECK_FALSE(bytewise.fault);
    CHECK(bytewise.released == text(n));
  }
}

TEST_CASE("esdk: every truncation point is rejected") {
  std::string msg = encrypt(text(40), 16, {{"a", "b"}});
  size_t rejected = 0;
  for (size_t len = 0; len < msg.size(); ++len) {
    Outcome o = decrypt(msg.substr(0, len));
    rejected += o.fault.has_value() ? 1 : 0;
    CHECK(o.released.size() < 40);
  }
  CHECK(rejected == msg.size()); // 100 %
}

TEST_CASE("esdk: every single-bit flip is rejected, and no unverified plaintext leaves") {
  const std::string plain = text(40);
  std::string msg = encrypt(plain, 16, {{"a", "b"}});
  size_t flips = 0;
  size_t rejected = 0;
  for (size_t i = 0; i < msg.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = msg;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      Outcome o = decrypt(bad);
      ++flips;
      rejected += o.fault.has_value() ? 1 : 0;
      // What left before the failure is whole verified frames of the original.
      CHECK(o.released.size() % 16 == 0);
      CHECK(plain.compare(0, o.released.size(), o.released) == 0);
      CHECK(o.released.size() < plain.size());
    }
  }
  CHECK(rejected == flips); // 100 %
}

TEST_CASE("esdk: each kind of damage has its own fault") {
  const std::string plain = text(40);
  std::string msg = encrypt(plain, 16, {{"purpose", "test"}});
  size_t h = header_length(msg);
  const size_t frame = 4 + 12 + 16 + 16;

  CHECK(decrypt(msg, keys().other).fault == Fault::wrong_key);
  CHECK(decrypt(msg, keys().priv, "k2").fault == Fault::no_matching_key);

  std::string tampered = msg;
  tampered[tampered.find("test")] = 'T'; // a context value: authenticated, not parsed
  CHECK(decrypt(tampered).fault == Fault::header_auth_failed);

  std::string swapped = msg.substr(0, h) + msg.substr(h + frame, frame) + msg.substr(h, frame) +
                        msg.substr(h + 2 * frame);
  CHECK(decrypt(swapped).fault == Fault::bad_sequence);

  CHECK(decrypt(msg + "x").fault == Fault::trailing_bytes);
  CHECK(decrypt(msg.substr(0, msg.size() - 1)).fault == Fault::truncated);

  std::string commitment = msg;
  commitment[h - 16 - 1] ^= 1; // last byte of the suite data (the commitment key)
  CHECK(decrypt(commitment).fault == Fault::commitment_mismatch);

  std::string iv = msg;
  iv[h + 4] ^= 1; // first IV byte of frame 1
  CHECK(decrypt(iv).fault == Fault::bad_frame_iv);

  std::string body = msg;
  body[h + 4 + 12] ^= 1; // ciphertext of frame 1
  CHECK(decrypt(body).fault == Fault::frame_auth_failed);

  std::string longer = msg;
  size_t final_at = h + 2 * frame;
  longer[final_at + 4 + 4 + 12 + 3] = 17; // final frame content length 8 -> 17 > 16
  CHECK(decrypt(longer).fault == Fault::final_frame_too_long);

  std::string v1 = msg;
  v1[0] = 0x01;
  CHECK(decrypt(v1).fault == Fault::legacy_suite);
  std::string v3 = msg;
  v3[0] = 0x03;
  CHECK(decrypt(v3).fault == Fault::bad_version);
  std::string legacy = msg;
  legacy[1] = 0x00;
  legacy[2] = 0x78; // 0x0078: AES-256-GCM without commitment
  CHECK(decrypt(legacy).fault == Fault::legacy_suite);
  std::string signed_suite = msg;
  signed_suite[1] = 0x05; // 0x0578: the signed committing suite
  CHECK(decrypt(signed_suite).fault == Fault::unsupported_suite);
}

TEST_CASE("esdk: reserved context keys and too many wrapped keys") {
  std::string msg = encrypt(text(10), 16, {{"bws-crypto-public-key", "x"}});
  msg[msg.find("bws-crypto")] = 'a';
  CHECK(decrypt(msg).fault == Fault::reserved_context_key);

  CHECK_FALSE(decrypt(encrypt(text(10), 16, {}, 16)).fault);
  CHECK(decrypt(encrypt(text(10), 16, {}, 17)).fault == Fault::too_many_wrapped_keys);

  esdk::EncryptParams p;
  p.recipients.push_back({"lethe-test", "k1", &keys().pub});
  p.context = {{"aws-crypto-public-key", "x"}};
  CHECK_THROWS_AS(esdk::Encryptor(p, [](const unsigned char*, size_t) {}), lethe::Error);
}

TEST_CASE("esdk: the ciphertext of the same input differs each time (fresh data key and id)") {
  CHECK(encrypt(text(100), 64) != encrypt(text(100), 64));
}
