#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace lethe;

TEST_CASE("sha256: FIPS 180-2 test vectors") {
  CHECK(crypto::hex(crypto::sha256("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(crypto::hex(crypto::sha256("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  crypto::Sha256 h;
  h.update("ab");
  h.update("c");
  CHECK(crypto::hex(h.finish()) == crypto::hex(crypto::sha256("abc")));
}

TEST_CASE("hmac_sha256: RFC 4231 test case 2") {
  CHECK(crypto::hex(crypto::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("hmac strategy: the README's openssl recipe recomputes a buyer's pseudonym") {
  // The documented recipe: the key file's bytes without trailing newlines, the value's text.
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "lethe-hmac-recipe";
  std::filesystem::create_directories(dir);
  std::filesystem::path key = dir / "hmac.key";
  {
    std::ofstream out(key);
    out << "0f1e2d3c4b5a69788796a5b4c3d2e1f0\n\n";
  }
  std::filesystem::permissions(key, std::filesystem::perms::owner_read |
                                        std::filesystem::perms::owner_write);
  const std::string value = "Zoë.Buyer+tag@example.org";
  std::string lethe_value =
      "hmac:" +
      crypto::hex(crypto::hmac_sha256(util::read_secret_file(key, "hmac key").view(), value));
  std::string cmd = "printf '%s' '" + value + "' | openssl dgst -sha256 -hmac \"$(cat " +
                    key.string() + ")\" | sed 's/.*= /hmac:/'";
  std::string recipe;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr) {
    recipe += buf;
  }
  REQUIRE(::pclose(p) == 0);
  while (!recipe.empty() && recipe.back() == '\n') {
    recipe.pop_back();
  }
  CHECK(recipe == lethe_value);
  std::filesystem::remove_all(dir);
}
