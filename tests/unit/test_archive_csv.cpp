// The CSV reader of archive rewrites, on what PostgreSQL's COPY … FORMAT csv writes.
#include "jobs/archive/csv.hpp"

#include <catch2/catch.hpp>

using namespace lethe::jobs::archive;

namespace {

struct Read {
  bool ok = false;
  std::vector<std::string> raw;
  std::vector<std::vector<std::optional<std::string>>> fields;
};

Read read(std::string_view data) {
  Read out;
  out.ok = for_each_csv_record(data, [&](const CsvRecord& r) {
    out.raw.emplace_back(r.raw);
    out.fields.push_back(r.fields);
  });
  return out;
}

} // namespace

TEST_CASE("csv: fields, NULL against the empty string, quotes and line ends inside a field") {
  Read r = read("id,name,note\n1,,\"\"\n2,\"Smith, \"\"Jo\"\"\",\"two\nlines\"\n3,x,y");
  REQUIRE(r.ok);
  REQUIRE(r.fields.size() == 4);
  CHECK(r.fields[0] == std::vector<std::optional<std::string>>{"id", "name", "note"});
  CHECK(r.fields[1] == std::vector<std::optional<std::string>>{"1", std::nullopt, ""});
  CHECK(r.fields[2] == std::vector<std::optional<std::string>>{"2", "Smith, \"Jo\"", "two\nlines"});
  CHECK(r.fields[3] == std::vector<std::optional<std::string>>{"3", "x", "y"});
  // Each record's bytes are as stored, so a kept record is copied unchanged.
  CHECK(r.raw[2] == "2,\"Smith, \"\"Jo\"\"\",\"two\nlines\"\n");
  CHECK(r.raw[3] == "3,x,y");
  std::string joined;
  for (const std::string& s : r.raw) {
    joined += s;
  }
  CHECK(joined == "id,name,note\n1,,\"\"\n2,\"Smith, \"\"Jo\"\"\",\"two\nlines\"\n3,x,y");
}

TEST_CASE("csv: a trailing empty field is NULL, and an empty member has no record") {
  Read r = read("a,\n");
  REQUIRE(r.ok);
  REQUIRE(r.fields.size() == 1);
  CHECK(r.fields[0] == std::vector<std::optional<std::string>>{"a", std::nullopt});
  CHECK(read("").fields.empty());
  CHECK(read("").ok);
}

TEST_CASE("csv: what is not well-formed is refused, after the records before it") {
  Read open = read("1,x\n2,\"never closed\n");
  CHECK_FALSE(open.ok);
  CHECK(open.fields.size() == 1);
  CHECK_FALSE(read("1,\"closed\"then text\n").ok);
  CHECK_FALSE(read("1,a\"b\n").ok);
}
