#include "worker/util/files.hpp"
#include "worker/util/secret.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>

using namespace lethe;

TEST_CASE("Secret: wipe zeroes every byte of the buffer, terminator included") {
  util::Secret s("hunter2-password");
  const char* bytes = s.c_str(); // the buffer stays allocated until destruction
  REQUIRE(std::string(bytes) == "hunter2-password");
  s.wipe();
  CHECK(s.empty());
  for (size_t i = 0; i <= 16; ++i) {
    CHECK(bytes[i] == '\0');
  }
}

TEST_CASE("Secret: a move hands over the buffer and leaves nothing behind") {
  util::Secret a("key-bytes");
  const char* buffer = a.c_str();
  util::Secret b(std::move(a));
  CHECK(b.c_str() == buffer); // the same bytes, not a copy
  CHECK(b.view() == "key-bytes");
  CHECK(a.empty());        // NOLINT(bugprone-use-after-move): the moved-from state
  CHECK(a.view().empty()); // NOLINT(bugprone-use-after-move)
  util::Secret c("other");
  const char* old = c.c_str();
  c = std::move(b);
  CHECK(c.view() == "key-bytes");
  CHECK(c.c_str() == buffer);
  CHECK(old != buffer);
}

TEST_CASE("Secret: resize keeps c_str() terminated and zeroes what it drops") {
  util::Secret s = util::Secret::with_capacity(8);
  std::memcpy(s.data(), "abc\n\n", 5);
  s.resize(3);
  CHECK(s.view() == "abc");
  CHECK(std::string(s.c_str()) == "abc");
  CHECK(s.data()[3] == '\0');
  CHECK(s.data()[4] == '\0');
  s.resize(99);
  CHECK(s.size() == 8);
}

TEST_CASE("read_secret_file: the secret is read into a Secret, newlines dropped") {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "lethe-secret-test";
  std::filesystem::create_directories(dir);
  std::filesystem::path p = dir / "pw";
  std::ofstream(p) << "s3cret\n\n";
  ::chmod(p.c_str(), 0600);
  util::Secret s = util::read_secret_file(p, "test secret");
  CHECK(s.view() == "s3cret");
  CHECK(std::string(s.c_str()) == "s3cret");
  std::filesystem::remove_all(dir);
}
