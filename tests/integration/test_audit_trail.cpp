// C13/C14/C17: append-only, hash-chained, anchored audit records.
#include "support/cluster.hpp"
#include "worker/audit/trail.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <vector>

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

void append_n(const test::TestDb& t, int n) {
  auto s = t.admin();
  audit::Trail trail = trail_for(t);
  for (int i = 0; i < n; ++i) {
    trail.append(*s, audit::Record{audit::Kind::manual, "test", "done", "done", std::nullopt,
                                   "{\"n\":" + std::to_string(i) + "}", "{}"});
  }
}

std::vector<std::string> anchor_lines(const test::TestDb& t) {
  std::vector<std::string> out;
  std::ifstream in(t.dir() / "audit-anchor");
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

void write_anchor(const test::TestDb& t, const std::vector<std::string>& lines,
                  const std::string& tail = {}) {
  std::string text;
  for (const std::string& l : lines) {
    text += l + "\n";
  }
  test::write_file(t.dir() / "audit-anchor", text + tail);
}

// The chain hash as the format is documented (worker/audit/trail.cpp), computed independently:
// version 1 without the inserting role, version 2 with it after the unit.
struct Forged {
  long long seq = 0;
  std::string recorded_at = "2026-11-28T12:00:00.000000Z";
  std::string job = "archive restore";
  std::string actor = "auditor-jane";
  std::string prev_hash;
};

std::string forged_hash(const Forged& f, const std::string& role /* empty: version 1 */) {
  std::string text = role.empty() ? "lethe-audit-v1\n" : "lethe-audit-v2\n";
  auto field = [&text](const std::string& v) { text += std::to_string(v.size()) + ":" + v + "\n"; };
  for (const std::string& v : {std::to_string(f.seq), f.recorded_at, std::string("manual"), f.job,
                               f.actor, std::string("jane"), std::string()}) {
    field(v);
  }
  if (!role.empty()) {
    field(role);
  }
  for (const std::string& v : {std::string(), std::string("done"), std::string("restored"),
                               std::string("{}"), std::string("{}"), f.prev_hash}) {
    field(v);
  }
  return crypto::hex(crypto::sha256(text));
}

// Inserts, over `s`, a correctly chained record claiming `f`'s actor and job, hashed with
// `hash_role` (empty: version 1). Returns its seq.
long long forge(db::Session& s, Forged f, const std::string& hash_role) {
  db::Rows last = s.exec("SELECT seq, hash FROM lethe.audit_log ORDER BY seq DESC LIMIT 1");
  f.seq = last.integer(0, 0) + 1;
  f.prev_hash = last.text(0, 1);
  s.exec("INSERT INTO lethe.audit_log (seq, recorded_at, kind, job, actor, os_user, unit, run_id, "
         "outcome, exit_reason, counts, details, prev_hash, hash) VALUES ($1, $2::timestamptz, "
         "'manual', $3, $4, 'jane', '', NULL, 'done', 'restored', '{}', '{}', $5, $6)",
         {std::to_string(f.seq), f.recorded_at, f.job, f.actor, f.prev_hash,
          forged_hash(f, hash_role)});
  return f.seq;
}

std::unique_ptr<db::Session> purge_role_session(const test::TestDb& t) {
  t.alter_roles("ALTER ROLE lethe_purge PASSWORD 'pw-purge'");
  test::write_file(t.dir() / "purge.password", "pw-purge\n", 0600);
  auto cfg = t.write_config("purge.toml",
                            t.config_text("lethe_purge", (t.dir() / "purge.password").string()));
  return db::connect(settings::load(cfg));
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
  s->exec("ALTER TABLE lethe.audit_log ENABLE TRIGGER USER");
  test::RunResult v = t.lethe("audit verify --json");
  CHECK(v.exit == 65);
  CHECK(v.out.find("\"first_broken_seq\":3") != std::string::npos);
  CHECK(v.err.find("record 3 was altered") != std::string::npos);
  CHECK(v.err.find("HINT: treat this as a security incident") != std::string::npos);
  // The failed verify is itself an alarm record after the chain it checked, and it opened an
  // incident (C15, C18); the alteration stays found.
  db::Rows alarm =
      s->exec("SELECT kind, outcome, exit_reason, counts::jsonb ->> 'first_broken_seq' "
              "FROM lethe.audit_log ORDER BY seq DESC LIMIT 1");
  CHECK(alarm.text(0, 0) == "alarm");
  CHECK(alarm.text(0, 2) == "chain_broken");
  CHECK(alarm.text(0, 3) == "3");
  CHECK(s->exec("SELECT count(*) FROM lethe.incidents WHERE kind = 'audit verify: chain_broken' "
                "AND state = 'open'")
            .integer(0, 0) == 1);
  CHECK(t.lethe("audit verify").exit == 65);
  CHECK(s->exec("SELECT alarms FROM lethe.incidents WHERE kind = 'audit verify: chain_broken'")
            .integer(0, 0) == 2);
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
  CHECK(rep.problem.find("anchor file names record 4 (line 4)") != std::string::npos);
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

TEST_CASE("audit verify: an anchor line that does not parse fails, naming its line, even after "
          "the newest records were removed") {
  test::TestDb t("audit_anchor_garbage", 0);
  t.migrate_and_grant();
  append_n(t, 4); // records 1 (migrate) to 5
  std::vector<std::string> lines = anchor_lines(t);
  REQUIRE(lines.size() == 5);
  lines.insert(lines.begin() + 3, "# checked by ops, all good");
  write_anchor(t, lines);
  test::RunResult v = t.lethe("audit verify");
  CHECK(v.exit == 65);
  CHECK(v.err.find("line 4 is not '<seq> <sha256>' (the line before it names record 3)") !=
        std::string::npos);
  // The same with the newest records deleted: the lines after the comment still count.
  auto s = t.admin();
  s->exec("ALTER TABLE lethe.audit_log DISABLE TRIGGER USER");
  s->exec("DELETE FROM lethe.audit_log WHERE seq >= 4");
  v = t.lethe("audit verify --json");
  CHECK(v.exit == 65);
  CHECK(v.err.find("anchor file names record 5 (line 6)") != std::string::npos);
  CHECK(v.out.find("\"ok\":false") != std::string::npos);
}

TEST_CASE("audit verify: an absent or empty anchor with records fails until `audit reanchor` "
          "records who and why") {
  test::TestDb t("audit_anchor_absent", 0);
  t.migrate_and_grant();
  append_n(t, 2);
  std::filesystem::remove(t.dir() / "audit-anchor");
  test::RunResult v = t.lethe("audit verify");
  CHECK(v.exit == 65);
  CHECK(v.err.find("is absent while the audit table holds 3 records") != std::string::npos);
  CHECK(v.err.find("HINT: ") != std::string::npos);
  CHECK(v.err.find("lethe audit reanchor") != std::string::npos);
  write_anchor(t, {});
  v = t.lethe("audit verify");
  CHECK(v.exit == 65);
  CHECK(v.err.find("holds no complete line") != std::string::npos);

  CHECK(t.lethe("audit reanchor --reason 'disk replaced'").exit == 64); // who is required
  test::RunResult r = t.lethe("audit reanchor --operator ops-anna --reason 'disk replaced'");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(r.out.find("re-anchored at record 6 by ops-anna") != std::string::npos);
  CHECK(std::filesystem::exists(t.dir() / "audit-anchor.replaced-6"));
  CHECK(t.lethe("audit verify").exit == 0);
  test::RunResult show = t.lethe("audit show --json --job 'audit reanchor'");
  CHECK(show.out.find("\"actor\":\"ops-anna\"") != std::string::npos);
  CHECK(show.out.find("\"reason\":\"disk replaced\"") != std::string::npos);
  // Nothing to re-anchor once the anchor agrees.
  CHECK(t.lethe("audit reanchor --operator ops-anna --reason again").exit == 64);
}

TEST_CASE("audit reanchor: refused when the anchor shows removed records") {
  test::TestDb t("audit_reanchor_refused", 0);
  t.migrate_and_grant();
  append_n(t, 3);
  std::vector<std::string> lines = anchor_lines(t);
  lines.insert(lines.begin() + 1, "garbage");
  write_anchor(t, lines);
  auto s = t.admin();
  s->exec("ALTER TABLE lethe.audit_log DISABLE TRIGGER USER");
  s->exec("DELETE FROM lethe.audit_log WHERE seq = 4");
  test::RunResult r = t.lethe("audit reanchor --operator mallory --reason cleanup");
  CHECK(r.exit == 65);
  CHECK(r.err.find("refusing to re-anchor") != std::string::npos);
  CHECK(r.err.find("anchor file names record 4") != std::string::npos);
  CHECK(
      s->exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'audit reanchor'").integer(0, 0) ==
      0);
}

TEST_CASE("audit anchor: a torn last line is reported, not taken for tampering, and the next "
          "append cuts it off") {
  test::TestDb t("audit_anchor_torn", 0);
  t.migrate_and_grant();
  append_n(t, 2);
  std::vector<std::string> lines = anchor_lines(t);
  REQUIRE(lines.size() == 3);
  write_anchor(t, lines, "4 3f9a0c"); // an append a crash cut short
  test::RunResult v = t.lethe("audit verify");
  CHECK(v.exit == 0);
  CHECK(v.err.find("line 4 is torn") != std::string::npos);
  // The verify's own record (a passed verify is recorded) is the next append, and it cuts the
  // torn line off.
  CHECK(v.err.find("event=audit.anchor_repaired") != std::string::npos);
  std::vector<std::string> after = anchor_lines(t);
  REQUIRE(after.size() == 4);
  CHECK(after[3].rfind("4 ", 0) == 0);
  CHECK(after[3].size() == 66);
  v = t.lethe("audit verify");
  CHECK(v.exit == 0);
  CHECK(v.err.find("event=audit.anchor_torn") == std::string::npos);
}

TEST_CASE("audit verify: a torn line glued to the next is named by its line and the record it "
          "was meant for") {
  test::TestDb t("audit_anchor_glued", 0);
  t.migrate_and_grant();
  append_n(t, 15); // records 1 to 16
  std::vector<std::string> lines = anchor_lines(t);
  REQUIRE(lines.size() == 16);
  // What an older lethe left: the append for record 6 torn, the next one glued onto it.
  lines[5] = lines[5].substr(0, 12) + lines[6];
  lines.erase(lines.begin() + 6);
  write_anchor(t, lines);
  test::RunResult v = t.lethe("audit verify");
  CHECK(v.exit == 65);
  CHECK(v.err.find("line 6 is not '<seq> <sha256>' (it begins with record 6)") !=
        std::string::npos);
  CHECK(v.err.find("record 16") == std::string::npos);
}

TEST_CASE("audit anchor: a failed append after the commit fails the run (74, HINT) and records "
          "it once") {
  test::TestDb t("audit_anchor_full", 200);
  t.migrate_and_grant();
  append_n(t, 14); // 15 anchor lines, 1011 bytes: the next line crosses 1 KiB
  REQUIRE(std::filesystem::file_size(t.dir() / "audit-anchor") == 1011);
  std::string text = t.config_text();
  text = test::set_key(text, "max_fraction_of_table", "1.0");
  text = test::set_key(text, "max_rows_per_run", "10000000");
  auto cfg = t.write_config("roomy.toml", text);
  std::string purge = std::string(LETHE_BIN) + " --config " + cfg.string() + " purge";
  test::RunResult r = test::run_shell("bash -c \"( trap '' XFSZ; ulimit -f 1; exec " + purge +
                                          " ) 2>&1 | cat; exit \\${PIPESTATUS[0]}\"",
                                      t.dir());
  INFO(r.out);
  CHECK(r.exit == 74);
  CHECK(r.out.find("audit record 16 is committed") != std::string::npos);
  CHECK(r.out.find("HINT: ") != std::string::npos);
  CHECK(r.out.find("audit.spooled") == std::string::npos);
  CHECK(std::filesystem::file_size(t.dir() / "audit-anchor") == 1011); // no torn line left
  std::error_code ec;
  CHECK(std::filesystem::file_size(t.dir() / "audit-spool", ec) == static_cast<uintmax_t>(-1));

  auto s = t.admin();
  std::string run = s->exec("SELECT run_id FROM lethe.audit_log WHERE seq = 16").text(0, 0);
  CHECK(t.lethe("audit verify").exit == 0); // the anchor lags; nothing was removed
  test::RunResult next = t.lethe("purge", cfg);
  INFO(next.err);
  CHECK(next.exit == 0);
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE run_id = $1", {run}).integer(0, 0) ==
        1);
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE details::jsonb ? 'spool_id'")
            .integer(0, 0) == 0);
  CHECK(t.lethe("audit verify").exit == 0);
}

TEST_CASE("audit: the role that inserted a record is stamped by the server and covered by the "
          "hash") {
  test::TestDb t("audit_role", 0);
  t.migrate_and_grant();
  auto as_purge = purge_role_session(t);

  SECTION("a version-1 record forged after schema 3 fails verify, naming the true role") {
    long long seq = forge(*as_purge, Forged{}, "");
    test::RunResult v = t.lethe("audit verify");
    CHECK(v.exit == 65);
    CHECK(v.err.find("record " + std::to_string(seq) + " was altered") != std::string::npos);
    CHECK(v.err.find("the role that inserted it (lethe_purge)") != std::string::npos);
  }
  SECTION("a hash over a role other than the inserting one fails verify") {
    long long seq = forge(*as_purge, Forged{}, "lethe_archive");
    test::RunResult v = t.lethe("audit verify");
    CHECK(v.exit == 65);
    CHECK(v.err.find("record " + std::to_string(seq) + " was altered") != std::string::npos);
  }
  SECTION("an honest hash verifies, and show names the role beside the claimed actor") {
    forge(*as_purge, Forged{}, "lethe_purge");
    CHECK(t.lethe("audit verify").exit == 0);
    test::RunResult text = t.lethe("audit show --job 'archive restore'");
    CHECK(text.out.find("role=lethe_purge actor=auditor-jane") != std::string::npos);
    test::RunResult json = t.lethe("audit show --json --job 'archive restore'");
    CHECK(json.out.find("\"db_role\":\"lethe_purge\"") != std::string::npos);
  }
  SECTION("a record from before schema 3 (no role) keeps verifying with version 1") {
    auto s = t.admin();
    s->exec("ALTER TABLE lethe.audit_log DISABLE TRIGGER audit_log_stamp_role");
    forge(*s, Forged{}, "");
    s->exec("ALTER TABLE lethe.audit_log ENABLE TRIGGER audit_log_stamp_role");
    CHECK(t.lethe("audit verify").exit == 0);
    CHECK(t.lethe("audit show --job 'archive restore'").out.find("role=- actor=auditor-jane") !=
          std::string::npos);
  }
}

TEST_CASE("trail: a closing record for a run that already ended keeps the first end and says so") {
  test::TestDb t("trail_late_close", 0);
  t.migrate_and_grant();
  auto s = t.admin();
  long long run = s->exec("INSERT INTO lethe.job_runs (job, actor, os_user, lethe_version) VALUES "
                          "('purge', 'x', 'x', 'v') RETURNING run_id")
                      .integer(0, 0);
  audit::Trail trail(t.dir() / "audit-anchor", t.dir() / "audit-spool",
                     util::Identity{"test", "x", ""});
  // Another run closed it as abandoned; then the run's own closing record arrives (a spool
  // flush): before, it ended the run a second time without a word.
  trail.append(*s,
               audit::Record{audit::Kind::run, "purge", "abandoned", "abandoned", run, "{}", "{}"},
               audit::Closes::run);
  audit::Stored late = trail.append(
      *s, audit::Record{audit::Kind::run, "purge", "done", "done", run, "{\"rows\":3}", "{}"},
      audit::Closes::run);
  CHECK(late.record.details == "{\"run_already_ended_as\":\"abandoned\"}");
  CHECK(s->exec("SELECT details FROM lethe.audit_log WHERE seq = $1", {std::to_string(late.seq)})
            .text(0, 0) == late.record.details);
  CHECK(s->exec("SELECT outcome FROM lethe.job_runs WHERE run_id = $1", {std::to_string(run)})
            .text(0, 0) == "abandoned");
  CHECK(t.lethe("audit verify").exit == 0);
}
