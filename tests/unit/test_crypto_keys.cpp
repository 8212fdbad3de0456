#include "worker/crypto/keys.hpp"
#include "worker/util/error.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace lethe;

namespace {

fs::path temp_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("lethe-keys-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    crypto::generate_key_pair(d / "k.pem", d / "k.pub");
    return d;
  }();
  return dir;
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

template <typename F>
Exit error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK_FALSE(e.hint().empty());
    return e.code();
  }
  return Exit::ok;
}

} // namespace

TEST_CASE("generate_key_pair: RSA-4096, private 0600, public 0644, never overwritten") {
  fs::path d = temp_dir();
  CHECK(mode_of(d / "k.pem") == 0600);
  CHECK(mode_of(d / "k.pub") == 0644);
  CHECK(crypto::load_private_key((d / "k.pem").string()).bits() == 4096);
  CHECK(crypto::load_public_key(d / "k.pub").bits() == 4096);
  CHECK(error_of([&] { crypto::generate_key_pair(d / "k.pem", d / "other.pub"); }) ==
        Exit::cant_create);
}

TEST_CASE("load_private_key: a key readable by others is refused (77)") {
  fs::path d = temp_dir();
  fs::copy_file(d / "k.pem", d / "open.pem", fs::copy_options::overwrite_existing);
  ::chmod((d / "open.pem").c_str(), 0644);
  CHECK(error_of([&] { crypto::load_private_key((d / "open.pem").string()); }) == Exit::permission);
}

TEST_CASE("load_private_key: a bare name is a systemd credential") {
  fs::path d = temp_dir();
  fs::create_directories(d / "creds");
  fs::copy_file(d / "k.pem", d / "creds" / "archive-key", fs::copy_options::overwrite_existing);
  ::setenv("CREDENTIALS_DIRECTORY", (d / "creds").c_str(), 1);
  CHECK(crypto::load_private_key("archive-key").has_private());
  ::unsetenv("CREDENTIALS_DIRECTORY");
}

TEST_CASE("load keys: wrong files and short keys are refused (65)") {
  fs::path d = temp_dir();
  CHECK(error_of([&] { crypto::load_public_key(d / "k.pem"); }) ==
        Exit::data); // private, not public
  REQUIRE(std::system(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " +
                       (d / "short.pem").string() + " 2>/dev/null && openssl pkey -in " +
                       (d / "short.pem").string() + " -pubout -out " + (d / "short.pub").string())
                          .c_str()) == 0);
  ::chmod((d / "short.pem").c_str(), 0600);
  CHECK(error_of([&] { crypto::load_public_key(d / "short.pub"); }) == Exit::data);
  CHECK(error_of([&] { crypto::load_private_key((d / "short.pem").string()); }) == Exit::data);
}

TEST_CASE("rsa_oaep: wrap then unwrap, another key cannot unwrap") {
  crypto::RsaKey priv = crypto::generate_rsa_key(3072);
  crypto::RsaKey pub = crypto::public_half(priv);
  crypto::RsaKey other = crypto::generate_rsa_key(3072);
  crypto::SecretBytes key(32);
  crypto::random_bytes(key.data(), key.size());
  std::string wrapped = crypto::rsa_oaep_wrap(pub, key);
  CHECK(wrapped.size() == 384);
  crypto::SecretBytes back;
  REQUIRE(crypto::rsa_oaep_unwrap(priv, wrapped, back));
  CHECK(std::equal(back.data(), back.data() + 32, key.data()));
  crypto::SecretBytes none;
  CHECK_FALSE(crypto::rsa_oaep_unwrap(other, wrapped, none));
}
