// C16 and the auditor's report: `lethe inventory` from the PII map and the live catalog (roles
// from the grants, not the configuration), and `lethe report`, one self-contained HTML file
// rendered by a real browser, carrying the database's numbers and no PII, its digest recorded.
#include "support/cluster.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace lethe;

namespace {

test::RunResult run(const test::TestDb& t, const std::string& args, int exit = 0,
                    const std::filesystem::path& cfg = {}) {
  test::RunResult r = t.lethe(args, cfg);
  INFO(args << "\n" << r.out << r.err);
  REQUIRE(r.exit == exit);
  return r;
}

long long scalar(db::Session& s, const std::string& sql) {
  return s.exec(sql).integer(0, 0);
}

const nlohmann::json& table_of(const nlohmann::json& inv, const std::string& name) {
  for (const auto& t : inv["tables"]) {
    if (t["table"] == name) {
      return t;
    }
  }
  FAIL("no table " + name);
  throw;
}

const nlohmann::json& column_of(const nlohmann::json& table, const std::string& name) {
  for (const auto& c : table["columns"]) {
    if (c["column"] == name) {
      return c;
    }
  }
  FAIL("no column " + name);
  throw;
}

bool has(const nlohmann::json& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

} // namespace

TEST_CASE("inventory: categories from the map, roles from the catalog's grants, copies counted",
          "[evidence]") {
  test::TestDb t("inventory", 200);
  t.migrate_and_grant();
  t.make_archive_keys();
  auto s = t.admin();
  run(t, "purge --force");
  run(t, "archive run");
  nlohmann::json inv = nlohmann::json::parse(run(t, "inventory --format json").out);
  const auto& orders = table_of(inv, "public.orders");
  CHECK(orders["purpose"] == "fulfilling and shipping Amazon orders; tax invoices for business "
                             "orders");
  const auto& email = column_of(orders, "buyer_email");
  CHECK(email["category"] == "email");
  CHECK(email["strategy"] == "hmac");
  // The purge role may change the column (UPDATE) but not read it; the monitor neither.
  CHECK(has(email["roles_may_change"], "lethe_purge"));
  CHECK_FALSE(has(email["roles_may_read"], "lethe_purge"));
  CHECK_FALSE(has(email["roles_may_read"], "lethe_monitor"));
  CHECK(has(orders["roles_may_delete_rows"], "lethe_request"));
  CHECK_FALSE(has(orders["roles_may_delete_rows"], "lethe_purge"));
  CHECK(column_of(table_of(inv, "public.buyer_tax_classifications"), "value")["category"] ==
        "tax_id");
  CHECK(table_of(inv, "public.buyer_tax_info")["table_strategy"] == "delete-row");
  // Copies: live rows with PII and archived rows, as the catalog and the data say.
  CHECK(orders["copies"]["live_rows_with_pii"] ==
        scalar(*s, "SELECT count(*) FROM orders WHERE (buyer_email IS NOT NULL AND "
                   "buyer_email NOT LIKE 'hmac:%') OR (buyer_name IS NOT NULL AND buyer_name <> "
                   "'[redacted]')"));
  CHECK(orders["copies"]["spooled_archive_rows"] ==
        scalar(*s, "SELECT orders FROM lethe.archives"));
  CHECK(orders["copies"]["archives"] == 1);

  // A grant made by hand shows at once: the inventory reads the catalog, not the configuration.
  t.alter_roles("GRANT SELECT (buyer_email) ON orders TO lethe_monitor");
  inv = nlohmann::json::parse(run(t, "inventory --format json").out);
  CHECK(has(column_of(table_of(inv, "public.orders"), "buyer_email")["roles_may_read"],
            "lethe_monitor"));
  t.alter_roles("REVOKE SELECT (buyer_email) ON orders FROM lethe_monitor");

  // Markdown and HTML say the same.
  std::string md = run(t, "inventory").out;
  CHECK(md.find("| buyer_email | email | hmac |") != std::string::npos);
  run(t, "inventory --format html --out " + (t.dir() / "inv.html").string());
  std::string page = util::read_file(t.dir() / "inv.html");
  CHECK(page.find("<td>buyer_email</td><td>email</td>") != std::string::npos);
  test::require_no_pii(md + page + inv.dump(), t.pii_values());
  run(t, "inventory --format pdf", 64);

  // A PII column without a category: config check and inventory refuse, naming it.
  std::string text = util::read_file(t.config());
  std::string cut = text;
  cut.replace(cut.find("category = \"email\"\n"), 19, "");
  auto bare = t.write_config("bare.toml", cut);
  test::RunResult c = run(t, "config check", 78, bare);
  CHECK(c.err.find("public.orders.buyer_email has no category") != std::string::npos);
  CHECK(c.err.find("HINT: add category") != std::string::npos);
  CHECK(run(t, "config check --offline", 78, bare).err.find("buyer_email has no category") !=
        std::string::npos);
  run(t, "inventory", 78, bare);
  std::string wrong = text;
  wrong.replace(wrong.find("category = \"email\""), 18, "category = \"e-mail\"");
  CHECK(run(t, "config check --offline", 78, t.write_config("wrong.toml", wrong))
            .err.find("category 'e-mail' is not one of name, email") != std::string::npos);
}

TEST_CASE("report: every clause with the period's evidence, in a real browser, the same data "
          "as JSON, no PII, its digest in the audit trail",
          "[evidence]") {
  test::TestDb t("report", 300);
  t.migrate_and_grant();
  t.approve();
  t.make_archive_keys();
  auto s = t.admin();
  run(t, "purge", 65); // the safety limit: an alarm and an incident
  run(t, "purge --force");
  run(t, "check");
  run(t, "archive run");
  run(t, "check");
  run(t, "backup run");
  run(t, "drill run --private-key " + (t.dir() / "backup.pem").string());
  std::string order = s->exec("SELECT amazon_order_id FROM orders WHERE NOT is_business_order "
                              "ORDER BY 1 LIMIT 1")
                          .text(0, 0);
  run(t, "request add --action delete --operator op-ann --reason test --amazon-ref REP-1 "
         "--scope order:" +
             order);
  run(t, "request run");
  run(t, "incident notify 1 --operator op-ann --channel 'email to Amazon security'");

  std::filesystem::path html = t.dir() / "report.html";
  run(t, "report --from 2000-01-01 --out " + html.string());
  nlohmann::json j = nlohmann::json::parse(run(t, "report --from 2000-01-01 --format json").out);

  // The JSON's numbers are the database's.
  long long rows = scalar(*s, "SELECT sum((counts::jsonb ->> 'rows_sanitized')::bigint) FROM "
                              "lethe.job_runs WHERE job = 'purge'");
  long long purge_rows = 0;
  for (const auto& d : j["purge_by_day"]) {
    purge_rows += d["rows"].get<long long>();
  }
  CHECK(purge_rows == rows);
  REQUIRE(j["drills"].size() == 1);
  double rto = std::stod(s->exec("SELECT rto_seconds FROM lethe.drills").text(0, 0));
  CHECK(j["drills"][0]["rto_seconds"].get<double>() == Approx(rto));
  REQUIRE(j["requests"].size() == 1);
  CHECK(j["requests"][0]["amazon_ref"] == "REP-1");
  CHECK(j["requests"][0]["live_clock"] == "met");
  REQUIRE(j["incidents"].size() == 1);
  CHECK(j["incidents"][0]["notice"] == "met");
  CHECK(j["audit_verified_now"]["ok"] == true);
  CHECK(j["archives"]["written"] == 1);
  CHECK(j["backups"]["written"] == 1);
  CHECK(j["overdue_by_day"].size() == 1);
  CHECK(j["overdue_by_day"][0]["samples"] == 2);
  REQUIRE(j["clauses"].size() == 19);
  for (size_t i = 0; i < 19; ++i) {
    CHECK(j["clauses"][i]["clause"] == "C" + std::to_string(i + 1));
  }
  CHECK(j["clauses"][4]["status"] == "evidence"); // C5: the request met its clock
  CHECK(j["clauses"][0]["status"] == "evidence"); // C1: runs, samples, nothing overdue
  CHECK(j["purge_gaps"].empty());
  // A period without runs or samples is no evidence: attention, not silence.
  nlohmann::json empty =
      nlohmann::json::parse(run(t, "report --from 2001-01-01 --to 2001-02-01 --format json").out);
  CHECK(empty["clauses"][0]["status"] == "attention");
  CHECK(empty["clauses"][2]["status"] == "attention"); // C3: no backup, no verify
  // A purge three days ago and none since until today's: a gap the report names.
  s->exec("INSERT INTO lethe.job_runs (job, actor, os_user, lethe_version, outcome, started_at, "
          "finished_at, counts) VALUES ('purge', 't', 't', 'x', 'done', now() - interval '3 days', "
          "now() - interval '3 days', '{\"orders_done\":0}')");
  nlohmann::json gap = nlohmann::json::parse(run(t, "report --format json").out);
  REQUIRE(gap["purge_gaps"].size() == 1);
  CHECK(gap["purge_gaps"][0]["hours"].get<double>() == Approx(72).margin(1));
  CHECK(gap["clauses"][0]["status"] == "attention");

  // In a real browser: not blank, nothing fetched from elsewhere, the numbers in the text.
  std::string page = util::read_file(html);
  std::string expect = " 'C1' 'C19' 'nightly purge runs succeeded' '" + std::to_string(rows) +
                       " rows sanitized' 'REP-1' 'purge: safety_limit' "
                       "'email to Amazon security' 'the audit chain verified intact' "
                       "'Rows sanitized by the purge per day' 'Recovery time of each restore "
                       "drill' 'public.orders'";
  test::RunResult shown =
      test::run_shell("node " LETHE_SOURCE_DIR "/tests/browser/render-check.mjs " + html.string() +
                          " " + (t.dir() / "report.png").string() + expect,
                      t.dir());
  INFO(shown.out + shown.err);
  CHECK(shown.exit == 0);
  CHECK(shown.out.find("\"missing\":[]") != std::string::npos);
  CHECK(shown.out.find("\"external\":[]") != std::string::npos);
  CHECK(page.find("<script") == std::string::npos);
  CHECK(page.find("<svg") != std::string::npos);

  // The file's digest is in the audit trail, with the period.
  db::Rows rec = s->exec("SELECT details::jsonb ->> 'sha256', details::jsonb ->> 'format', actor "
                         "FROM lethe.audit_log WHERE job = 'report' ORDER BY seq LIMIT 1");
  REQUIRE(rec.size() == 1);
  CHECK(rec.text(0, 0) == crypto::hex(crypto::sha256(page)));
  CHECK(rec.text(0, 1) == "html");

  // No PII in either form; a bad period or format is a usage error.
  std::vector<std::string> pii = t.pii_values();
  test::require_no_pii(page + j.dump(), pii);
  test::require_no_pii(page, {order});
  run(t, "report --from 2026-02-01 --to 2026-01-01", 64);
  run(t, "report --format pdf", 64);
  CHECK(run(t, "audit verify").exit == 0);
}
