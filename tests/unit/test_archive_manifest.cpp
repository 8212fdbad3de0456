// An archive's JSON members read back without trusting them: tables.json and the manifest's
// members, as lethe writes them and as a crafted archive might not.
#include "jobs/archive/manifest.hpp"

#include <catch2/catch.hpp>

using namespace lethe;
using namespace lethe::jobs::archive;

TEST_CASE("manifest: tables.json reads back what was written") {
  std::vector<TableColumns> tables{{"public.orders", {{"id", "text"}, {"total", "numeric(10,2)"}}},
                                   {"shop.notes", {{"odd.name \"x\"", "text"}}}};
  std::string text = util::dump(tables_to_json(tables));
  CHECK(text == "[{\"table\":\"public.orders\",\"columns\":[{\"name\":\"id\",\"type\":\"text\"},"
                "{\"name\":\"total\",\"type\":\"numeric(10,2)\"}]},{\"table\":\"shop.notes\","
                "\"columns\":[{\"name\":\"odd.name \\\"x\\\"\",\"type\":\"text\"}]}]");
  std::optional<std::vector<TableColumns>> back = parse_tables(text);
  REQUIRE(back);
  REQUIRE(back->size() == 2);
  CHECK((*back)[0].columns == tables[0].columns);
  CHECK((*back)[1].columns[0].first == "odd.name \"x\"");
  for (const char* bad : {"{}", "[1]", "[{\"table\":\"t\"}]",
                          "[{\"table\":\"t\",\"columns\":[{\"name\":\"a\"}]}]", "not json"}) {
    INFO(bad);
    CHECK_FALSE(parse_tables(bad));
  }
}

TEST_CASE("manifest: members with missing or mistyped fields never match") {
  std::optional<std::vector<ManifestMember>> m = manifest_members(
      R"({"members":[{"name":"public.orders/part-00001.csv","rows":3,"sha256":"ab"},)"
      R"({"name":"public.orders/part-00002.csv","rows":"3"},{}]})");
  REQUIRE(m);
  REQUIRE(m->size() == 3);
  CHECK((*m)[0].first_part);
  CHECK((*m)[0].rows == 3);
  CHECK((*m)[0].sha256 == "ab");
  CHECK_FALSE((*m)[1].first_part);
  CHECK((*m)[1].rows == -1); // a string is not a count
  CHECK((*m)[2].name.empty());
  CHECK_FALSE(manifest_members("{\"members\":{}}"));
  CHECK_FALSE(manifest_members("[]"));
  CHECK_FALSE(manifest_members("{\"members\":[1]}"));
  CHECK_FALSE(manifest_members("{"));
}

TEST_CASE("manifest: its tables match tables.json as JSON values, key order aside") {
  std::string tables = R"([{"table":"t","columns":[{"name":"a","type":"text"}]}])";
  CHECK(
      manifest_tables_match(R"({"tables":[{"columns":[{"type":"text","name":"a"}],"table":"t"}]})",
                            tables) == true);
  CHECK(manifest_tables_match(R"({"tables":[{"table":"t","columns":[]}]})", tables) == false);
  CHECK(manifest_tables_match(R"({"members":[]})", tables) == false);
  CHECK_FALSE(manifest_tables_match("{", tables).has_value());
}

TEST_CASE(
    "json: text that is not UTF-8 is replaced, never a failure, and stored text is shown as is") {
  util::Json j{{"reason", std::string("caf\xe9 \xff")}};
  CHECK(util::dump(j) == "{\"reason\":\"caf\xef\xbf\xbd \xef\xbf\xbd\"}");
  CHECK(util::json_or_text("{\"a\":1}")["a"] == 1);
  CHECK(util::json_or_text("{edited by hand") == "{edited by hand");
  CHECK_THROWS_AS(util::parse_json("{", "manifest.json"), Error);
}
