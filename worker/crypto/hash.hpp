// Hashes lethe needs outside the archive format: SHA-256 for the audit chain and digests,
// HMAC-SHA256 for the hmac strategy. OpenSSL is used only inside worker/crypto.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lethe::crypto {

using Digest = std::array<std::uint8_t, 32>;

// SHA-256 of `data`.
Digest sha256(std::string_view data);

// HMAC-SHA256 of `data` under `key`.
Digest hmac_sha256(std::string_view key, std::string_view data);

// Lowercase hex of `d`.
std::string hex(const Digest& d);

// Incremental SHA-256 for data that arrives in pieces.
class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  Digest finish();

private:
  void* m_ctx;
};

} // namespace lethe::crypto
