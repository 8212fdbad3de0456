#include "worker/crypto/hash.hpp"

#include <catch2/catch.hpp>

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
