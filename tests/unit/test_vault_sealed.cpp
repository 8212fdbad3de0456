// The vault's sealed files on a real file system: nothing under the final name before commit,
// identity by header, a changed byte caught on re-read, destruction that overwrites first.
#include "worker/util/files.hpp"
#include "worker/vault/sealed.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace lethe;

namespace {

struct Keys {
  crypto::RsaKey priv = crypto::generate_rsa_key(3072);
  crypto::RsaKey pub = crypto::public_half(priv);
};

const Keys& keys() {
  static const Keys k;
  return k;
}

crypto::esdk::EncryptParams params(const std::string& id) {
  crypto::esdk::EncryptParams p;
  p.recipients.push_back({"lethe-test", "k1", &keys().pub});
  p.context = {{"lethe-object", "test"}, {"lethe-test-id", id}};
  return p;
}

std::filesystem::path fresh_dir(const std::string& tag) {
  std::filesystem::path d = std::filesystem::temp_directory_path() /
                            ("lethe-vault-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  std::filesystem::permissions(d, std::filesystem::perms::owner_all);
  return d;
}

std::string decrypt(const std::filesystem::path& path) {
  crypto::esdk::DecryptParams p;
  p.keys.push_back({"lethe-test", "k1", &keys().priv});
  std::string out;
  crypto::esdk::Decryptor d(p, [&](const unsigned char* b, size_t n) {
    out.append(reinterpret_cast<const char*>(b), n);
  });
  std::string msg = util::read_file(path);
  d.update(reinterpret_cast<const unsigned char*>(msg.data()), msg.size());
  d.finish();
  return out;
}

void put(vault::SealedWriter& w, const std::string& s) {
  w.write(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

size_t files_in(const std::filesystem::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) {
    ++n;
  }
  return n;
}

} // namespace

TEST_CASE("vault: a sealed file appears under its name only on commit, 0600, and reads back") {
  std::filesystem::path dir = fresh_dir("commit");
  std::filesystem::path path = dir / "x.sealed";
  std::string plain(300000, 'p');
  vault::Sealed sealed;
  {
    vault::SealedWriter w(path, params("x-1"));
    put(w, plain);
    sealed = w.finish();
    CHECK_FALSE(std::filesystem::exists(path));
    CHECK(std::filesystem::exists(w.temp_path()));
    w.commit();
  }
  REQUIRE(std::filesystem::exists(path));
  CHECK(files_in(dir) == 1);
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  CHECK(sealed.size == std::filesystem::file_size(path));
  vault::FileCheck c = vault::check_file(path);
  CHECK(c.sha256 == sealed.sha256);
  CHECK_NOTHROW(vault::check_written(sealed, "test file", "hint"));
  CHECK(decrypt(path) == plain);
  std::filesystem::remove_all(dir);
}

TEST_CASE("vault: a writer dropped before commit leaves nothing behind") {
  std::filesystem::path dir = fresh_dir("drop");
  {
    vault::SealedWriter w(dir / "y.sealed", params("y-1"));
    put(w, "half a message");
  }
  CHECK(files_in(dir) == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("vault: a file is known by the label in its header, whatever its name") {
  std::filesystem::path dir = fresh_dir("label");
  {
    vault::SealedWriter w(dir / "z.sealed", params("z-42"));
    put(w, "content");
    w.commit();
  }
  std::filesystem::rename(dir / "z.sealed", dir / "renamed.bin");
  crypto::esdk::Context label = vault::read_label(dir / "renamed.bin");
  CHECK(label.at("lethe-test-id") == "z-42");
  CHECK(label.at("lethe-object") == "test");
  // Not a message, or a header cut short: no label.
  util::write_file_atomically(dir / "plain.txt", "not an esdk message", 0600);
  CHECK(vault::read_label(dir / "plain.txt").empty());
  std::string head = util::read_file(dir / "renamed.bin").substr(0, 40);
  util::write_file_atomically(dir / "cut.bin", head, 0600);
  CHECK(vault::read_label(dir / "cut.bin").empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("vault: a changed byte is caught on re-read, with the caller's hint") {
  std::filesystem::path dir = fresh_dir("flip");
  vault::Sealed sealed;
  {
    vault::SealedWriter w(dir / "f.sealed", params("f-1"));
    put(w, std::string(5000, 'q'));
    w.commit();
    sealed = w.finish();
  }
  std::fstream f(dir / "f.sealed", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(sealed.size / 2));
  f.put('\x5a');
  f.close();
  try {
    vault::check_written(sealed, "archive a-1", "check the spool");
    FAIL("a changed byte was not caught");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::io);
    CHECK(std::string(e.what()) == "archive a-1 reads back differently from what was written");
    CHECK(e.hint() == "check the spool");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("vault: destroy overwrites the file's content before it unlinks it") {
  std::filesystem::path dir = fresh_dir("destroy");
  std::filesystem::path path = dir / "d.sealed";
  {
    vault::SealedWriter w(path, params("d-1"));
    put(w, std::string(70000, 'd'));
    w.commit();
  }
  auto size = std::filesystem::file_size(path);
  // A second name for the same inode shows what destroy left in its blocks.
  std::filesystem::create_hard_link(path, dir / "witness");
  vault::destroy(path, "test file", "hint");
  CHECK_FALSE(std::filesystem::exists(path));
  std::string left = util::read_file(dir / "witness");
  CHECK(left.size() == size);
  CHECK(left == std::string(size, '\0'));
  try {
    vault::destroy(path, "test file", "run it again");
    FAIL("destroying a missing file succeeded");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::io);
    CHECK(std::string(e.what()).find("cannot destroy test file " + path.string() + ": open") == 0);
    CHECK(e.hint() == "run it again");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("vault: a spool others can open is refused with the chmod that fixes it") {
  std::filesystem::path dir = fresh_dir("spool");
  vault::ensure_spool(dir / "new", "backup.spool_dir");
  CHECK((std::filesystem::status(dir / "new").permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms::owner_all);
  ::chmod((dir / "new").c_str(), 0750);
  try {
    vault::ensure_spool(dir / "new", "backup.spool_dir");
    FAIL("an open spool was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::permission);
    CHECK(e.hint() == "chmod 0700 " + (dir / "new").string());
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("vault: a SealedReader hands back the plaintext only from the file its label names") {
  std::filesystem::path dir = fresh_dir("reader");
  std::string plain(600000, 'r');
  for (size_t i = 0; i < plain.size(); i += 997) {
    plain[i] = static_cast<char>('a' + i % 26);
  }
  {
    vault::SealedWriter w(dir / "r.sealed", params("r-7"));
    put(w, plain);
    w.commit();
  }
  crypto::esdk::DecryptParams dp;
  dp.keys.push_back({"lethe-test", "k1", &keys().priv});
  std::string got;
  {
    vault::SealedReader r(dir / "r.sealed", dp, "lethe-test-id", "r-7", "test file");
    unsigned char buf[4096];
    while (size_t n = r.read(buf, sizeof buf)) {
      got.append(reinterpret_cast<const char*>(buf), n);
    }
  }
  CHECK(got == plain);
  try {
    vault::SealedReader r(dir / "r.sealed", dp, "lethe-test-id", "r-8", "test file");
    unsigned char buf[16];
    r.read(buf, sizeof buf);
    FAIL("another file's label was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::data);
    CHECK(std::string(e.what()) == "file " + (dir / "r.sealed").string() + " is not test file r-8");
  }
  CHECK_THROWS_WITH(vault::SealedReader(dir / "missing", dp, "lethe-test-id", "r-7", "test file"),
                    Catch::Contains("cannot open test file file"));
  std::filesystem::remove_all(dir);
}
