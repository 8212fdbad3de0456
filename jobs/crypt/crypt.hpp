// Operator commands around the encryption core: encrypt, decrypt and keygen. They need no
// configuration and no database.
#pragma once

#include "worker/crypto/esdk.hpp"

#include <string>
#include <vector>

namespace lethe::jobs::crypt {

struct EncryptOptions {
  std::vector<std::string> recipients; // public key files
  std::string key_namespace;
  std::string key_name;
  std::vector<std::string> context; // k=v
  std::uint32_t frame_length = crypto::esdk::k_default_frame_length;
  std::string in;  // empty: stdin
  std::string out; // empty: stdout
};

struct DecryptOptions {
  std::string private_key;
  std::string key_namespace;
  std::string key_name;
  std::vector<std::string> context; // k=v pairs the message must carry
  std::string in;
  std::string out;
};

// `lethe encrypt`: returns the exit code.
int run_encrypt(const EncryptOptions& opt);
// `lethe decrypt`: plaintext to --out only after the whole message verified.
int run_decrypt(const DecryptOptions& opt);
// `lethe keygen`: an RSA-4096 pair.
int run_keygen(const std::string& out_private, const std::string& out_public);

// "k=v" strings as a context; Error(usage) on a string without '='.
crypto::esdk::Context parse_context(const std::vector<std::string>& pairs);

} // namespace lethe::jobs::crypt
