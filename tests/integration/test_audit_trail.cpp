// C13/C14/C17: append-only, hash-chained, anchored audit records.
#include "support/cluster.hpp"
#include "worker/audit/trail.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

namespace {

audit::Trail trail_for(const test::TestDb& t, const std::string& actor = "tester") {
  return audit::Trail(t.dir() / "audit-anchor", t.dir() / "audit-spool",
                      util::Identity{actor, "os-user", ""});
}

void append_three(const test::TestDb& t) {
  auto s = t.admin();
  audit::Trail trail = trail_for(t);
  for (int i = 0; i < 3; ++i) {
    trail.append(*s, audit::Record{audit::Kind::manual, "test", "done", "done", std::nullopt,
                                   "{\"n\":" + std::to_string(i) + "}", "{}"});
  }
}

} // namespace

TEST_CASE("audit: records chain, anchor and verify") {
  test::TestDb t("audit_chain", 0);
  t.migrate_and_grant();
  append_three(t);
  auto s = t.admin();
  audit::VerifyReport rep = audit::verify(*s, t.dir() / "audit-anchor");
  CHECK(rep.ok);
  CHECK(rep.records == 4); // the migrate run plus three
  CHECK(rep.anchored_seq == 4);
  db::Rows r = s->exec("SELECT seq, prev_hash, hash, actor FROM lethe.audit_log ORDER BY seq");
  CHECK(r.text(0, 1) == audit::k_genesis_hash);
  for (size_t i = 1; i < r.size(); ++i) {
    CHECK(r.text(i, 1) == r.text(i - 1, 2));
  }
  CHECK(r.text(3, 3) == "tester");
  test::RunResult v = t.lethe("audit verify");
  CHECK(v.exit == 0);
  CHECK(v.out.find("audit trail intact: 4 records") != std::string::npos);
}

TEST_CASE("audit: UPDATE, DELETE and TRUNCATE are rejected, even for the owner") {
  test::TestDb t("audit_append_only", 0);
  t.migrate_and_grant();
  auto s = t.admin();
  for (std::string sql : {"UPDATE lethe.audit_log SET actor = 'x'", "DELETE FROM lethe.audit_log",
                          "TRUNCATE lethe.audit_log"}) {
    INFO(sql);
    try {
      s->exec(sql);
      FAIL("audit log accepted " + sql);
    } catch (const db::DbError& e) {
      CHECK(e.sqlstate() == "42501");
      // The trigger's text is the server's and is not shown; its SQLSTATE is.
      CHECK(std::string(e.what()).find("42501") != std::string::npos);
    }
  }
}

TEST_CASE("audit verify: an altered record is found, and named") {
  test::TestDb t("audit_tamper", 0);
  t.migrate_and_grant();
  append_three(t);
  auto s = t.admin();
  // A superuser can switch the trigger off; the hash chain still tells.
  s->exec("ALTER TABLE lethe.audit_log DISABLE TRIGGER USER");
  s->exec("UPDATE lethe.audit_log SET counts = '{\"n\":9}' WHERE seq = 3");
  test::RunResult v = t.lethe("audit verify --json");
  CHECK(v.exit == 65);
  CHECK(v.out.find("\"first_broken_seq\":3") != std::string::npos);
  CHECK(v.err.find("record 3 was altered") != std::string::npos);
  CHECK(v.err.find("HINT: treat this as a security incident") != std::string::npos);
}

TEST_CASE("audit verify: a removed tail (truncation or rollback) is caught by the anchor file") {
  test::TestDb t("audit_truncate", 0);
  t.migrate_and_grant();
  append_three(t);
  auto s = t.admin();
  s->exec("ALTER TABLE lethe.audit_log DISABLE TRIGGER USER");
  s->exec("DELETE FROM lethe.audit_log WHERE seq >= 3");
  audit::VerifyReport rep = audit::verify(*s, t.dir() / "audit-anchor");
  CHECK_FALSE(rep.ok);
  CHECK(rep.first_broken_seq == 3);
  CHECK(rep.problem.find("anchor file names record 4") != std::string::npos);
}

TEST_CASE("audit verify: a deleted record in the middle breaks the sequence") {
  test::TestDb t("audit_gap", 0);
  t.migrate_and_grant();
  append_three(t);
  auto s = t.admin();
  s->exec("ALTER TABLE lethe.audit_log DISABLE TRIGGER USER");
  s->exec("DELETE FROM lethe.audit_log WHERE seq = 2");
  audit::VerifyReport rep = audit::verify(*s, t.dir() / "audit-anchor");
  CHECK_FALSE(rep.ok);
  CHECK(rep.first_broken_seq == 2);
}

TEST_CASE("audit show: text and JSON, filtered by job") {
  test::TestDb t("audit_show", 0);
  t.migrate_and_grant();
  append_three(t);
  test::RunResult all = t.lethe("audit show --json --operator alice");
  REQUIRE(all.exit == 0);
  CHECK(std::count(all.out.begin(), all.out.end(), '\n') == 4);
  test::RunResult one = t.lethe("audit show --job migrate --limit 5");
  CHECK(one.exit == 0);
  CHECK(std::count(one.out.begin(), one.out.end(), '\n') == 1);
  CHECK(one.out.find("migrate") != std::string::npos);
  CHECK(t.lethe("audit show --limit 0").exit == 64);
}
