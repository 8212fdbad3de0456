// `lethe config check`: the PII map against the live catalog; refusals are audited.
#include "support/cluster.hpp"

#include <catch2/catch.hpp>
#include <regex>

using namespace lethe;

TEST_CASE("config check: the example map matches the sample schema once grants are applied") {
  test::TestDb t("cfg_ok", 20);
  t.make_archive_keys(); // config check reads archive.recipients
  t.migrate_and_grant();
  test::RunResult r = t.lethe("config check");
  INFO(r.err);
  CHECK(r.exit == 0);
  CHECK(r.out.find("matches the database (4 PII tables") != std::string::npos);
}

TEST_CASE(
    "config check: missing tables and columns are refused with file:line:column, and audited") {
  test::TestDb t("cfg_bad", 20);
  t.make_archive_keys(); // config check reads archive.recipients
  t.migrate_and_grant();
  std::string text = t.config_text();
  text = std::regex_replace(text, std::regex("name = \"buyer_name\""), "name = \"buyer_nme\"");
  text = std::regex_replace(text, std::regex("public\\.shipping_addresses"),
                            "public.shipping_adresses");
  auto cfg = t.write_config("bad.toml", text);
  test::RunResult r = t.lethe("config check --operator carol", cfg);
  CHECK(r.exit == 78);
  CHECK(std::regex_search(
      r.err, std::regex("bad\\.toml:\\d+:\\d+: PII column 'buyer_nme' does not exist")));
  CHECK(std::regex_search(
      r.err, std::regex("bad\\.toml:\\d+:\\d+: table public\\.shipping_adresses does not exist")));
  CHECK(r.err.find("HINT:") != std::string::npos);
  auto s = t.admin();
  db::Rows a = s->exec(
      "SELECT kind, outcome, exit_reason, actor FROM lethe.audit_log WHERE job = 'config check'");
  REQUIRE(a.size() == 1);
  CHECK(a.text(0, 0) == "refusal");
  CHECK(a.text(0, 2) == "config_invalid");
  CHECK(a.text(0, 3) == "carol");
}

TEST_CASE("config check: state views made for another map are refused") {
  test::TestDb t("cfg_views", 20);
  t.make_archive_keys(); // config check reads archive.recipients
  t.migrate_and_grant();
  std::string text = t.config_text();
  text = std::regex_replace(text, std::regex("days = 30\n\n\\[purge\\]"), "days = 29\n\n[purge]");
  auto cfg = t.write_config("changed.toml", text);
  test::RunResult r = t.lethe("config check", cfg);
  CHECK(r.exit == 78);
  CHECK(r.err.find("was made for another PII map") != std::string::npos);
}

TEST_CASE("config check: type mismatches and a broken hold predicate") {
  test::TestDb t("cfg_types", 20);
  t.make_archive_keys(); // config check reads archive.recipients
  t.migrate_and_grant();
  std::string text = t.config_text();
  text = std::regex_replace(text, std::regex("shipped_at = \"shipped_at\""),
                            "shipped_at = \"buyer_email\"");
  text = std::regex_replace(text, std::regex("predicate = \"is_business_order\""),
                            "predicate = \"no_such_column\"");
  auto cfg = t.write_config("types.toml", text);
  test::RunResult r = t.lethe("config check", cfg);
  CHECK(r.exit == 78);
  CHECK(r.err.find("shipped_at column 'buyer_email' is text, not a timestamp") !=
        std::string::npos);
}

TEST_CASE("config check --offline: the file alone, no connection") {
  test::TestDb t("cfg_offline", 0);
  t.make_archive_keys(); // config check reads archive.recipients
  test::RunResult r = t.lethe("config check --offline");
  CHECK(r.exit == 0);
  CHECK(r.err.find("db.connected") == std::string::npos);
}
