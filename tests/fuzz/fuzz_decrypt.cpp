// libFuzzer target for the AWS Encryption SDK message reader (tests/fuzz/run-fuzz builds and
// runs it with clang, ASan and UBSan). Two modes, picked by the first input byte:
//  - even: the rest is fed to the Decryptor as a message, as an attacker would;
//  - odd: the rest is encrypted with a real key (frame length and one bit flip taken from the
//    input), then decrypted: unflipped it must round-trip exactly, flipped it must be refused.
#include "worker/crypto/esdk.hpp"

#include <cstdlib>
#include <string>

using namespace lethe::crypto;

namespace {

const RsaKey& private_key() {
  static const RsaKey k = generate_rsa_key(3072);
  return k;
}
const RsaKey& public_key() {
  static const RsaKey k = public_half(private_key());
  return k;
}

bool decrypt(const unsigned char* data, size_t n, std::string& out) {
  esdk::DecryptParams p;
  p.keys.push_back({"fuzz", "k", &private_key()});
  try {
    esdk::Decryptor d(p, [&](const unsigned char* b, size_t m) {
      out.append(reinterpret_cast<const char*>(b), m);
    });
    // Feed in two pieces to exercise the streaming path.
    size_t half = n / 2;
    d.update(data, half);
    d.update(data + half, n - half);
    d.finish();
    return true;
  } catch (const esdk::FormatError&) {
    return false;
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  public_key();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  std::string out;
  if ((data[0] & 1) == 0) {
    decrypt(data + 1, size - 1, out);
    return 0;
  }
  if (size < 5) {
    return 0;
  }
  std::uint32_t frame = 1 + data[1] % 64;
  size_t flip_at = static_cast<size_t>(data[2]) << 8 | data[3];
  bool flip = (data[4] & 1) != 0;
  std::string plain(reinterpret_cast<const char*>(data + 5), size - 5);
  esdk::EncryptParams p;
  p.recipients.push_back({"fuzz", "k", &public_key()});
  p.context = {{"fuzz", "1"}};
  p.frame_length = frame;
  std::string msg;
  esdk::Encryptor e(p, [&](const unsigned char* b, size_t m) {
    msg.append(reinterpret_cast<const char*>(b), m);
  });
  e.update(reinterpret_cast<const unsigned char*>(plain.data()), plain.size());
  e.finish();
  if (flip) {
    msg[flip_at % msg.size()] ^= static_cast<char>(1 << (data[4] >> 5));
  }
  bool ok = decrypt(reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out);
  if (flip ? ok : (!ok || out != plain)) {
    std::abort(); // a flipped message accepted, or a good one refused or changed
  }
  return 0;
}
