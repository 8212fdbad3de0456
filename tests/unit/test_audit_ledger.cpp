#include "worker/audit/ledger.hpp"
#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace lethe;

namespace {

std::vector<audit::LedgerEntry> chain(int n) {
  std::vector<audit::LedgerEntry> out;
  for (int i = 1; i <= n; ++i) {
    out.push_back(audit::next_ledger_entry(out.empty() ? nullptr : &out.back(),
                                           R"({"request_id":)" + std::to_string(i) + "}"));
  }
  return out;
}

std::string text_of(const std::vector<audit::LedgerEntry>& entries) {
  std::string out;
  for (const audit::LedgerEntry& e : entries) {
    out += std::to_string(e.seq) + " " + e.hash + " " + e.entry + "\n";
  }
  return out;
}

std::filesystem::path fresh_path(const std::string& name) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lethe-ledger-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir / name);
  return dir / name;
}

} // namespace

TEST_CASE("ledger: each hash covers the previous hash and the exact entry text") {
  std::vector<audit::LedgerEntry> c = chain(3);
  CHECK(c[0].prev_hash == std::string(64, '0'));
  CHECK(c[1].prev_hash == c[0].hash);
  CHECK(c[2].hash == audit::ledger_hash(c[1].hash, c[2].entry));
  CHECK(audit::ledger_hash(c[1].hash, c[2].entry + " ") != c[2].hash);
  audit::LedgerFile f = audit::parse_ledger(text_of(c));
  REQUIRE(f.entries.size() == 3);
  CHECK(f.entries[2].line == 3);
  CHECK(audit::ledger_problem(f, c, 3).empty());
}

TEST_CASE("ledger: an altered, missing, extra or unparsable line is named") {
  std::vector<audit::LedgerEntry> c = chain(3);
  std::vector<audit::LedgerEntry> altered = c;
  altered[1].entry = R"({"request_id":9})";
  CHECK(audit::ledger_problem(audit::parse_ledger(text_of(altered)), c, 3) ==
        "line 2 (entry 2) does not hash to its recorded SHA-256: the entry was altered");
  std::vector<audit::LedgerEntry> gap{c[0], c[2]};
  CHECK(audit::ledger_problem(audit::parse_ledger(text_of(gap)), c, 3).find("line 2 (entry 3)") ==
        0);
  // The table lost its newest entry (a restore from before it): the file says so.
  std::vector<audit::LedgerEntry> table{c[0], c[1]};
  CHECK(audit::ledger_problem(audit::parse_ledger(text_of(c)), table, 2) ==
        "line 3 (entry 3) is not in lethe.deletion_ledger");
  // The file lacks the newest entry: allowed only above `missing_ok_after`.
  std::string two = text_of({c[0], c[1]});
  CHECK(audit::ledger_problem(audit::parse_ledger(two), c, 2).empty());
  CHECK(audit::ledger_problem(audit::parse_ledger(two), c, 3) ==
        "entry 3 of lethe.deletion_ledger is not in the file");
  audit::LedgerFile bad = audit::parse_ledger(two + "3 zz {}\n");
  CHECK(bad.bad_line == 3);
  CHECK(audit::ledger_problem(bad, c, 3) == "line 3 is not '<seq> <sha256> <entry JSON>'");
  audit::LedgerFile torn = audit::parse_ledger(two + "3 " + c[2].hash);
  CHECK(torn.torn_line == 3);
  CHECK(torn.bad_line == 0);
  CHECK(torn.entries.size() == 2);
}

TEST_CASE("ledger: append_missing writes only what the file lacks, after cutting a torn line") {
  std::vector<audit::LedgerEntry> c = chain(3);
  std::filesystem::path p = fresh_path("ledger");
  CHECK(audit::append_missing(p, {c[0]}) == 1);
  {
    std::ofstream torn(p, std::ios::app);
    torn << "2 " << c[1].hash.substr(0, 20); // a crash in the middle of an append
  }
  CHECK(audit::append_missing(p, c) == 2);
  CHECK(util::read_file(p) == text_of(c));
  CHECK(audit::append_missing(p, c) == 0);
  // A file that disagrees with the table is never extended.
  std::vector<audit::LedgerEntry> other = c;
  other[0].entry = R"({"request_id":7})";
  other[0].hash = audit::ledger_hash(other[0].prev_hash, other[0].entry);
  try {
    audit::append_missing(p, other);
    FAIL("a disagreeing file was extended");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::data);
    CHECK_FALSE(e.hint().empty());
  }
  CHECK(util::read_file(p) == text_of(c));
}
