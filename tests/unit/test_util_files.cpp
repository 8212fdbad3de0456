#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace lethe;

namespace {

std::filesystem::path temp_file(const std::string& name, const std::string& text, unsigned mode) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lethe-unit-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::path p = dir / name;
  std::filesystem::remove(p);
  std::ofstream(p) << text;
  ::chmod(p.c_str(), mode);
  return p;
}

Exit secret_error(const std::filesystem::path& p) {
  try {
    util::read_secret_file(p, "test secret");
  } catch (const Error& e) {
    CHECK_FALSE(e.hint().empty());
    return e.code();
  }
  return Exit::ok;
}

} // namespace

TEST_CASE("read_secret_file: owner-only files are read, trailing newline dropped") {
  auto p = temp_file("ok.key", "s3cret\n", 0600);
  CHECK(util::read_secret_file(p, "test secret").view() == "s3cret");
  ::chmod(p.c_str(), 0400);
  CHECK(util::read_secret_file(p, "test secret").view() == "s3cret");
}

TEST_CASE("read_secret_file: group/world access, other owners and missing files are refused (77)") {
  CHECK(secret_error(temp_file("group.key", "x", 0640)) == Exit::permission);
  CHECK(secret_error(temp_file("world.key", "x", 0604)) == Exit::permission);
  CHECK(secret_error(temp_file("gw.key", "x", 0620)) == Exit::permission);
  CHECK(secret_error("/nonexistent/lethe.key") == Exit::permission);
  if (::geteuid() == 0) {
    auto p = temp_file("other.key", "x", 0600);
    REQUIRE(::chown(p.c_str(), 65534, 65534) == 0);
    CHECK(secret_error(p) == Exit::permission);
  }
}

TEST_CASE("append_durably: appends lines and creates the file 0600") {
  auto p = temp_file("anchor", "", 0600);
  std::filesystem::remove(p);
  util::append_durably(p, "1 aa");
  util::append_durably(p, "2 bb");
  CHECK(util::read_file(p) == "1 aa\n2 bb\n");
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("write_file_atomically: replaces content, leaves no temporary file") {
  auto p = temp_file("atomic", "old", 0600);
  util::write_file_atomically(p, "new");
  CHECK(util::read_file(p) == "new");
  for (const auto& e : std::filesystem::directory_iterator(p.parent_path())) {
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  }
}

TEST_CASE("append_line_atomically: cuts a torn last line off, then appends a whole line") {
  auto p = temp_file("anchor-atomic", "1 aa\n2 b", 0600);
  util::AppendOutcome out = util::append_line_atomically(p, "2 bb");
  CHECK(out.torn_line == 2);
  CHECK(out.torn_bytes == 3);
  CHECK(util::read_file(p) == "1 aa\n2 bb\n");
  out = util::append_line_atomically(p, "3 cc");
  CHECK(out.torn_line == 0);
  CHECK(util::read_file(p) == "1 aa\n2 bb\n3 cc\n");
  auto only_torn = temp_file("anchor-torn-only", "1 a", 0600);
  CHECK(util::append_line_atomically(only_torn, "1 aa").torn_line == 1);
  CHECK(util::read_file(only_torn) == "1 aa\n");
}

TEST_CASE("filesystem errors map to 77/73/74 and wrappers throw Error with the path") {
  CHECK(util::exit_for(std::make_error_code(std::errc::permission_denied)) == Exit::permission);
  CHECK(util::exit_for(std::make_error_code(std::errc::not_a_directory)) == Exit::cant_create);
  CHECK(util::exit_for(std::make_error_code(std::errc::no_space_on_device)) == Exit::cant_create);
  CHECK(util::exit_for(std::make_error_code(std::errc::io_error)) == Exit::io);
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lethe-files-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "file") << "x";
  try {
    util::create_directories(dir / "file" / "sub");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::cant_create);
    CHECK(std::string(e.what()).find((dir / "file" / "sub").string()) != std::string::npos);
    CHECK_FALSE(e.hint().empty());
  }
  std::filesystem::path p = util::make_private_directory(dir, "stage-");
  CHECK((std::filesystem::status(p).permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms::owner_all);
  util::remove_all_quietly(dir);
  CHECK_FALSE(std::filesystem::exists(dir));
}
