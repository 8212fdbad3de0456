// C2/C13 (issues #8 items 2, 3, 4, 7, 9, 11 and #15 items 3, 5): the archive catalog is evidence.
// Spool files are known by their header, destruction is recorded only when it happened, the
// catalog commits with its audit record, job roles cannot rewrite it, verify and restore check
// files against the audit chain, and SIGTERM stops a run cleanly.
#include "support/cluster.hpp"
#include "worker/archive/tar.hpp"
#include "worker/crypto/esdk.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <regex>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

std::string field(const std::string& json, const std::string& key) {
  std::smatch m;
  if (std::regex_search(json, m, std::regex("\"" + key + "\":\"?([^\",}]*)"))) {
    return m[1];
  }
  return {};
}

long long count(db::Session& s, const std::string& sql, const db::Params& params = {}) {
  return s.exec(sql, params).integer(0, 0);
}

long long held_due(db::Session& s) {
  return count(s,
               "SELECT count(*) FROM lethe.pii_state_public_orders WHERE held AND due_at <= "
               "$1::timestamptz",
               {k_as_of});
}

// Business orders whose PII is due (by any clock) and still present.
long long business_due_with_pii(db::Session& s) {
  return count(s,
               "SELECT count(*) FROM orders WHERE is_business_order AND buyer_name <> '[redacted]' "
               "AND amazon_order_id IN (SELECT amazon_order_id FROM lethe.pii_state_public_orders "
               "WHERE due_at <= $1::timestamptz)",
               {k_as_of});
}

std::filesystem::path role_password(const test::TestDb& t, const std::string& role) {
  t.alter_roles("ALTER ROLE " + role + " PASSWORD 'pw-" + role + "'");
  std::filesystem::path p = t.dir() / (role + ".password");
  test::write_file(p, "pw-" + role + "\n", 0600);
  return p;
}

void require_denied(db::Session& s, const std::string& sql) {
  INFO(sql);
  try {
    s.transact([&](db::Transaction& tx) { tx.exec(sql); });
    FAIL_CHECK("allowed: " + sql);
  } catch (const db::DbError& e) {
    CHECK(e.sqlstate() == "42501");
  }
}

// Ends every archive's retention by the server's clock (retention is years away in the tests).
void end_retention(db::Session& s) {
  s.exec("UPDATE lethe.archives SET retention_until = current_date - 1");
}

// Calls lethe.archive_set_state as the admin after a bare audit record (job `job`, the change
// from `from`) written in the same transaction, then rolls back. Returns the SQLSTATE of the
// refusal, empty when the function accepted the change.
std::string set_state_with_record(db::Session& s, const std::string& id, const std::string& state,
                                  const std::string& from, const std::string& job) {
  try {
    s.transact([&](db::Transaction& tx) {
      tx.exec("INSERT INTO lethe.audit_log (seq, recorded_at, kind, job, actor, os_user, unit, "
              "outcome, exit_reason, counts, details, prev_hash, hash) SELECT max(seq) + 1, "
              "now(), 'manual', $1, 'test', 'test', 'test', 'done', $2, '{}', "
              "json_build_object('archive_id', $3::text, 'from', $4::text)::text, 'x', "
              "md5(random()::text) FROM lethe.audit_log",
              {job, state, id, from});
      tx.exec("SELECT lethe.archive_set_state($1, $2, (SELECT max(seq) FROM lethe.audit_log))",
              {id, state});
      throw std::runtime_error("accepted");
    });
  } catch (const db::DbError& e) {
    return e.sqlstate();
  } catch (const std::runtime_error&) {
    return {};
  }
  return "not reached";
}

std::filesystem::path spool(const test::TestDb& t) {
  return t.dir() / "archive-spool";
}

std::filesystem::path config_with_spool(const test::TestDb& t, const std::string& file,
                                        const std::string& spool_dir) {
  return t.write_config(file, test::set_key(t.config_text(), "spool_dir", "\"" + spool_dir + "\""));
}

} // namespace

TEST_CASE("archive run: a cataloged archive is never an orphan, however the spool is spelled") {
  test::TestDb t("archive_spelling", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  std::filesystem::path path = s->exec("SELECT path FROM lethe.archives").text(0, 0);
  REQUIRE(std::filesystem::exists(path));
  std::filesystem::create_directory_symlink(spool(t), t.dir() / "spool-link");
  for (std::string spelling :
       {(t.dir() / "." / "archive-spool").string(), t.dir().string() + "//archive-spool",
        (t.dir() / "spool-link").string()}) {
    INFO(spelling);
    test::RunResult r = t.lethe("archive run --json --as-of '" + k_as_of + "'",
                                config_with_spool(t, "spelled.toml", spelling));
    INFO(r.err);
    CHECK(r.exit == 0);
    CHECK(field(r.out, "orphans_discarded") == "0");
    CHECK(std::filesystem::exists(path));
  }
  // Renamed, it is still known by the archive id in its header.
  std::filesystem::path renamed = spool(t) / "renamed.lethe-archive";
  std::filesystem::rename(path, renamed);
  test::RunResult r = t.lethe("archive run --json --as-of '" + k_as_of + "'");
  CHECK(r.exit == 0);
  CHECK(field(r.out, "orphans_discarded") == "0");
  CHECK(std::filesystem::exists(renamed));
  std::filesystem::rename(renamed, path);

  // A temporary file whose header never became whole is an unfinished write: discarded. A
  // finished-looking file whose header names no archive is not lethe's to delete: reported.
  test::write_file(spool(t) / "a20260630T000000Z-abcdef.lethe-archive.tmp-12345", "\x02\x05");
  test::write_file(spool(t) / "stranger.lethe-archive", "not an archive");
  test::RunResult mixed = t.lethe("archive run --json --as-of '" + k_as_of + "'");
  INFO(mixed.err);
  CHECK(mixed.exit == 0);
  CHECK(field(mixed.out, "orphans_discarded") == "1");
  CHECK_FALSE(
      std::filesystem::exists(spool(t) / "a20260630T000000Z-abcdef.lethe-archive.tmp-12345"));
  CHECK(std::filesystem::exists(spool(t) / "stranger.lethe-archive"));
  CHECK(mixed.err.find("event=archive.foreign_file") != std::string::npos);
  CHECK(std::filesystem::exists(path));
  CHECK(t.lethe("archive verify").exit == 0);
}

TEST_CASE("archive expire: a destruction that failed is not recorded and fails the command") {
  test::TestDb t("archive_expire_fail", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  std::filesystem::path path = s->exec("SELECT path FROM lethe.archives").text(0, 0);
  auto unchanged = [&] {
    db::Rows row = s->exec("SELECT state, destroyed_by IS NULL, destroyed_at IS NULL FROM "
                           "lethe.archives");
    CHECK(row.text(0, 0) == "spooled");
    CHECK(row.text(0, 1) == "t");
    CHECK(row.text(0, 2) == "t");
    CHECK(count(*s, "SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'destroyed'") == 0);
  };

  // Opening fails: the path is a directory.
  std::filesystem::path aside = t.dir() / "aside";
  std::filesystem::rename(path, aside);
  std::filesystem::create_directory(path);
  end_retention(*s);
  test::RunResult open_fails = t.lethe("archive expire");
  CHECK(open_fails.exit == 74);
  CHECK(open_fails.err.find("cannot destroy archive file") != std::string::npos);
  CHECK(open_fails.err.find("HINT:") != std::string::npos);
  unchanged();
  std::filesystem::remove(path);
  std::filesystem::rename(aside, path);
  CHECK(t.lethe("archive verify").exit == 0);

  // Overwriting fails after the first KiB (a file size limit makes write() fail with EFBIG).
  test::RunResult write_fails =
      test::run_shell("( trap '' XFSZ; ulimit -f 1; exec " LETHE_BIN " --config " +
                          t.config().string() + " archive expire ) 2>&1 | cat",
                      t.dir());
  CHECK(write_fails.out.find("overwrite") != std::string::npos);
  CHECK(write_fails.out.find("HINT:") != std::string::npos);
  unchanged();
  CHECK(std::filesystem::exists(path));
  CHECK(t.lethe("archive expire").exit == 0);
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(s->exec("SELECT state FROM lethe.archives").text(0, 0) == "destroyed");
  CHECK(t.lethe("archive verify").exit == 0);
}

TEST_CASE("archive run: the audit record commits with the catalog row, or nothing is sanitized") {
  test::TestDb t("archive_audit_fails", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  long long held = held_due(*s);
  REQUIRE(held > 5);
  std::vector<std::string> pii = t.pii_values();
  s->exec("CREATE FUNCTION public.refuse_archive_written() RETURNS trigger LANGUAGE plpgsql AS $$ "
          "BEGIN IF NEW.exit_reason = 'archive_written' THEN RAISE EXCEPTION 'test refuses'; END "
          "IF; RETURN NEW; END $$");
  s->exec("CREATE TRIGGER refuse_archive_written BEFORE INSERT ON lethe.audit_log FOR EACH ROW "
          "EXECUTE FUNCTION public.refuse_archive_written()");
  test::RunResult r = t.lethe("archive run --as-of '" + k_as_of + "'");
  INFO(r.err);
  CHECK(r.exit == 75);
  CHECK(r.err.find("could not be recorded with its audit record") != std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(count(*s, "SELECT count(*) FROM lethe.archives") == 0);
  CHECK(count(*s, "SELECT count(*) FROM lethe.archived_orders") == 0);
  CHECK(business_due_with_pii(*s) == held);
  CHECK(held_due(*s) == held);
  test::require_no_pii(r.out + r.err, pii);

  s->exec("DROP TRIGGER refuse_archive_written ON lethe.audit_log");
  test::RunResult again = t.lethe("archive run --json --as-of '" + k_as_of + "'");
  INFO(again.err);
  REQUIRE(again.exit == 0);
  CHECK(field(again.out, "orphans_discarded") == "1");
  // The catalog row names its archive_written record, which says what the catalog says.
  CHECK(count(*s, "SELECT count(*) FROM lethe.archives a JOIN lethe.audit_log l ON l.seq = "
                  "a.evidence_seq WHERE l.exit_reason = 'archive_written' AND "
                  "l.details::jsonb->>'archive_id' = a.archive_id AND "
                  "l.details::jsonb->>'sha256' = a.sha256 AND "
                  "(l.counts::jsonb->>'bytes')::bigint = a.size_bytes") == 1);
  CHECK(business_due_with_pii(*s) == 0);
}

TEST_CASE(
    "archive catalog: job roles cannot rewrite it, verify and restore check the audit chain") {
  test::TestDb t("archive_tamper", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  // The role `lethe grants` makes records an archive through the definer functions.
  auto cfg =
      t.write_config("archive-role.toml",
                     t.config_text("lethe_archive", role_password(t, "lethe_archive").string()));
  test::RunResult first = t.lethe("archive run --as-of '" + k_as_of + "'", cfg);
  INFO(first.err);
  REQUIRE(first.exit == 0);
  db::Rows cat = s->exec("SELECT archive_id, path FROM lethe.archives");
  std::string id = cat.text(0, 0);
  std::filesystem::path path = cat.text(0, 1);
  std::string seq =
      s->exec("SELECT seq FROM lethe.audit_log WHERE exit_reason = 'archive_written'").text(0, 0);
  REQUIRE(t.lethe("archive verify").exit == 0);

  // As lethe_archive: no evidence column, no state, no archived order without its archive.
  auto role = db::connect(settings::load(cfg));
  require_denied(*role, "UPDATE lethe.archives SET size_bytes = 1, sha256 = repeat('a', 64)");
  require_denied(*role, "UPDATE lethe.archives SET state = 'cold'");
  require_denied(*role,
                 "UPDATE lethe.archives SET state = 'destroyed', destroyed_by = 'auditor-jane'");
  require_denied(*role, "INSERT INTO lethe.archived_orders VALUES ('x-order', '" + id + "')");
  require_denied(*role, "INSERT INTO lethe.archives (archive_id, path, size_bytes, sha256, as_of, "
                        "retention_until, pii_map_digest, recipients, row_counts, orders, state) "
                        "VALUES ('a-forged', '/x', 1, repeat('a', 64), now(), '2036-01-01', 'x', "
                        "'[]', '{}', 1, 'cold')");
  // The definer functions want an audit record written in the same transaction.
  require_denied(*role, "SELECT lethe.archive_set_state('" + id + "', 'destroyed', " + seq + ")");
  require_denied(*role, "SELECT lethe.archive_orders('" + id + "', " + seq + ", ARRAY['x-order'])");
  CHECK(t.lethe("archive run --json --as-of '" + k_as_of + "'", cfg).exit == 0);

  // A forged archive (anyone with the public key can make one) over the cataloged path, with
  // the catalog rewritten to match (by an owner, who bypasses the grants): verify and restore
  // refuse it, because the audit chain says otherwise.
  std::string original = util::read_file(path);
  std::string forged;
  {
    crypto::RsaKey pub = crypto::load_public_key(t.dir() / "archive.pub");
    crypto::esdk::EncryptParams p;
    p.recipients.push_back({"lethe-archive", "archive-2026", &pub});
    p.context = {{"lethe-archive-id", id}};
    crypto::esdk::Encryptor enc(p, [&](const unsigned char* d, size_t n) {
      forged.append(reinterpret_cast<const char*>(d), n);
    });
    lethe::archive::TarWriter tar([&](const unsigned char* d, size_t n) { enc.update(d, n); });
    tar.add("tables.json", "[]");
    tar.add("manifest.json", "{}");
    tar.finish();
    enc.finish();
  }
  test::write_file(path, forged);
  s->exec("UPDATE lethe.archives SET size_bytes = $2, sha256 = $3 WHERE archive_id = $1",
          {id, std::to_string(forged.size()), crypto::hex(crypto::sha256(forged))});
  test::RunResult v = t.lethe("archive verify --json");
  CHECK(v.exit == 65);
  CHECK(v.out.find(id + ": the catalog's length or SHA-256 differs from its archive_written") !=
        std::string::npos);
  std::filesystem::path out = t.dir() / "restored";
  test::RunResult r =
      t.lethe("archive restore " + id + " --private-key " + (t.dir() / "archive.pem").string() +
              " --into " + out.string() + " --reason test");
  CHECK(r.exit == 65);
  CHECK(r.err.find("archive_written audit record") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(out / "tables.json"));
  CHECK(count(*s, "SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'restored'") == 0);
  test::write_file(path, original);
  s->exec("UPDATE lethe.archives SET size_bytes = $2, sha256 = $3 WHERE archive_id = $1",
          {id, std::to_string(original.size()), crypto::hex(crypto::sha256(original))});
  REQUIRE(t.lethe("archive verify").exit == 0);

  // A state the audit trail never recorded: cold, or destroyed by someone who did not.
  s->exec("UPDATE lethe.archives SET state = 'cold' WHERE archive_id = $1", {id});
  test::RunResult cold = t.lethe("archive verify --json");
  CHECK(cold.exit == 65);
  CHECK(cold.out.find(id + ": the catalog says cold, the audit trail says spooled") !=
        std::string::npos);
  s->exec("UPDATE lethe.archives SET state = 'destroyed', destroyed_by = 'auditor-jane' WHERE "
          "archive_id = $1",
          {id});
  CHECK(t.lethe("archive verify").exit == 65);
  s->exec("UPDATE lethe.archives SET state = 'spooled', destroyed_by = NULL WHERE archive_id = $1",
          {id});
  // Through lethe, the same changes carry their audit records and verify agrees.
  REQUIRE(t.lethe("archive mark-cold " + id + " --operator vault").exit == 0);
  CHECK(t.lethe("archive verify").exit == 0);
  // Not before its retention ends by the server's clock, in lethe or in the function.
  test::RunResult early = t.lethe("archive mark-destroyed " + id + " --operator erin");
  CHECK(early.exit == 65);
  CHECK(early.err.find("HINT:") != std::string::npos);
  CHECK(set_state_with_record(*s, id, "destroyed", "cold", "archive mark") == "42501");
  CHECK(s->exec("SELECT state FROM lethe.archives").text(0, 0) == "cold");
  end_retention(*s);
  CHECK(set_state_with_record(*s, id, "destroyed", "cold", "archive mark").empty());
  REQUIRE(t.lethe("archive mark-destroyed " + id + " --operator erin").exit == 0);
  // Who: the actor lethe wrote and the role the server stamped on the record.
  db::Rows by =
      s->exec("SELECT destroyed_by, destroyed_by_role = session_user FROM lethe.archives");
  CHECK(by.text(0, 0) == "erin");
  CHECK(by.text(0, 1) == "t");
  test::RunResult listed = t.lethe("archive list --json");
  CHECK(listed.out.find("\"destroyed_by\":\"erin\"") != std::string::npos);
  CHECK(listed.out.find("\"destroyed_by_role\":\"" + s->exec("SELECT session_user").text(0, 0) +
                        "\"") != std::string::npos);
  CHECK(t.lethe("archive verify").exit == 0);
  CHECK(t.lethe("audit verify").exit == 0);
}

TEST_CASE("archive run: SIGTERM rolls back the unrecorded archive or stops after recording, 75") {
  for (std::string point : {"archive:written", "archive:recorded"}) {
    INFO(point);
    test::TestDb t("archive_term", 150, "2026-06-30");
    t.make_archive_keys();
    t.migrate_and_grant();
    auto s = t.admin();
    long long held = held_due(*s);
    REQUIRE(held > 5);
    test::RunResult r =
        test::run_shell("LETHE_TERM_AT=" + point + " " LETHE_BIN " --config " +
                            t.config().string() + " archive run --as-of '" + k_as_of + "'",
                        t.dir());
    INFO(r.err);
    CHECK(r.exit == 75);
    CHECK(s->exec("SELECT outcome FROM lethe.job_runs WHERE job = 'archive run'").text(0, 0) ==
          "interrupted");
    CHECK(count(*s, "SELECT count(*) FROM lethe.audit_log WHERE job = 'archive run' AND outcome = "
                    "'interrupted' AND exit_reason = 'interrupted'") == 1);
    CHECK(business_due_with_pii(*s) == held); // stopped before any order was sanitized
    long long files = 0;
    for (const auto& e : std::filesystem::directory_iterator(spool(t))) {
      (void)e;
      ++files;
    }
    if (point == "archive:written") {
      CHECK(count(*s, "SELECT count(*) FROM lethe.archives") == 0);
      CHECK(files == 0); // the pending file went with the rolled-back step
    } else {
      CHECK(count(*s, "SELECT count(*) FROM lethe.archives") == 1);
      CHECK(files == 1);
    }
    test::RunResult next = t.lethe("archive run --json --as-of '" + k_as_of + "'");
    INFO(next.err);
    CHECK(next.exit == 0);
    CHECK(business_due_with_pii(*s) == 0);
    CHECK(count(*s, "SELECT count(*) FROM lethe.archives") == 1);
    CHECK(t.lethe("archive verify").exit == 0);
  }
}

TEST_CASE("archive grants: an upgraded database loses schema 2's broad grants, and only "
          "evidence releases a held order") {
  test::TestDb t("archive_upgrade_grants", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  // What schema 2's grants script gave the archive job, still there after an upgrade.
  s->exec("GRANT SELECT, INSERT, UPDATE ON lethe.archives TO lethe_archive");
  s->exec("GRANT SELECT, INSERT ON lethe.archived_orders TO lethe_archive");
  t.alter_roles(db::grants_sql(t.settings()));
  auto cfg =
      t.write_config("archive-role.toml",
                     t.config_text("lethe_archive", role_password(t, "lethe_archive").string()));
  auto role = db::connect(settings::load(cfg));
  std::string key = s->exec("SELECT amazon_order_id FROM lethe.pii_state_public_orders WHERE held "
                            "AND due_at <= $1::timestamptz ORDER BY 1 LIMIT 1",
                            {k_as_of})
                        .text(0, 0);
  require_denied(*role, "INSERT INTO lethe.archived_orders VALUES ('" + key + "', 'x')");
  require_denied(*role, "UPDATE lethe.archives SET state = 'cold'");
  require_denied(*role, "UPDATE lethe.archives SET evidence_seq = 1");

  // A row written around lethe.archive_orders, for an archive the catalog does not hold with
  // its evidence, releases nothing, and verify names it.
  long long held = held_due(*s);
  s->exec("INSERT INTO lethe.archived_orders VALUES ($1, 'a-fake')", {key});
  CHECK(held_due(*s) == held);
  test::RunResult purge = t.lethe("purge --force --operator test --as-of '" + k_as_of + "'");
  INFO(purge.err);
  CHECK(purge.exit == 0);
  CHECK(s->exec("SELECT buyer_name <> '[redacted]' FROM orders WHERE amazon_order_id = $1", {key})
            .text(0, 0) == "t");
  test::RunResult v = t.lethe("archive verify --json");
  CHECK(v.exit == 65);
  CHECK(v.out.find("a-fake: 1 archived_orders row(s) name an archive not cataloged with its "
                   "evidence") != std::string::npos);
  s->exec("DELETE FROM lethe.archived_orders WHERE archive_id = 'a-fake'");

  // A cataloged archive whose archived_orders do not add up to its orders fails verify too.
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  CHECK(t.lethe("archive verify").exit == 0);
  std::string id = s->exec("SELECT archive_id FROM lethe.archives").text(0, 0);
  s->exec("DELETE FROM lethe.archived_orders WHERE order_key = (SELECT min(order_key) FROM "
          "lethe.archived_orders)");
  test::RunResult short_one = t.lethe("archive verify --json");
  CHECK(short_one.exit == 65);
  CHECK(short_one.out.find(id + ": the catalog says ") != std::string::npos);
}

TEST_CASE("archive state: a spooled archive is destroyed only by expire, after its retention "
          "by the server's clock, and the destroyer's role is the server's") {
  test::TestDb t("archive_destroy_rules", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  auto cfg =
      t.write_config("archive-role.toml",
                     t.config_text("lethe_archive", role_password(t, "lethe_archive").string()));
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'", cfg).exit == 0);
  db::Rows cat = s->exec("SELECT archive_id, path FROM lethe.archives");
  std::string id = cat.text(0, 0);
  std::filesystem::path path = cat.text(0, 1);
  auto still_spooled = [&] {
    CHECK(std::filesystem::exists(path));
    CHECK(s->exec("SELECT state FROM lethe.archives").text(0, 0) == "spooled");
    CHECK(count(*s, "SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'destroyed'") == 0);
  };

  // (a) The file is in the spool: only expire, which overwrites it, may record it destroyed.
  test::RunResult marked = t.lethe("archive mark-destroyed " + id + " --operator erin", cfg);
  CHECK(marked.exit == 65);
  CHECK(marked.err.find("archive expire") != std::string::npos);
  CHECK(marked.err.find("HINT:") != std::string::npos);
  still_spooled();

  // (c) Not before retention ends by the server's clock: a later --as-of is refused, and the
  // function refuses whatever record comes with the change.
  test::RunResult ahead = t.lethe("archive expire --as-of 2040-01-01", cfg);
  CHECK(ahead.exit == 64);
  CHECK(ahead.err.find("HINT:") != std::string::npos);
  CHECK(t.lethe("archive expire", cfg).exit == 0);
  still_spooled();
  CHECK(set_state_with_record(*s, id, "destroyed", "spooled", "archive expire") == "42501");
  end_retention(*s);
  CHECK(set_state_with_record(*s, id, "destroyed", "spooled", "archive mark") == "42501");
  CHECK(set_state_with_record(*s, id, "destroyed", "spooled", "archive expire").empty());
  CHECK(t.lethe("archive mark-destroyed " + id + " --operator erin", cfg).exit == 65);
  still_spooled();

  // (b) Expired by the archive role: destroyed_by is the actor, destroyed_by_role the server's.
  test::RunResult expired = t.lethe("archive expire --operator erin", cfg);
  INFO(expired.err);
  CHECK(expired.exit == 0);
  CHECK_FALSE(std::filesystem::exists(path));
  db::Rows by = s->exec("SELECT state, destroyed_by, destroyed_by_role FROM lethe.archives");
  CHECK(by.text(0, 0) == "destroyed");
  CHECK(by.text(0, 1) == "erin");
  CHECK(by.text(0, 2) == "lethe_archive");
  test::RunResult listed = t.lethe("archive list", cfg);
  CHECK(listed.out.find("destroyed by erin (role lethe_archive)") != std::string::npos);
  CHECK(t.lethe("archive verify").exit == 0);
  // A destroyer rewritten in the catalog disagrees with the record.
  s->exec("UPDATE lethe.archives SET destroyed_by_role = 'lethe_monitor'");
  test::RunResult v = t.lethe("archive verify --json");
  CHECK(v.exit == 65);
  CHECK(v.out.find(id + ": the catalog's destroyed_by differs") != std::string::npos);
}

TEST_CASE("archive expire: a change the database refuses leaves the file in place") {
  test::TestDb t("archive_expire_refused", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  auto cfg =
      t.write_config("archive-role.toml",
                     t.config_text("lethe_archive", role_password(t, "lethe_archive").string()));
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'", cfg).exit == 0);
  std::filesystem::path path = s->exec("SELECT path FROM lethe.archives").text(0, 0);
  end_retention(*s);
  s->exec("REVOKE EXECUTE ON FUNCTION lethe.archive_set_state(text, text, bigint) FROM "
          "lethe_archive");
  test::RunResult r = t.lethe("archive expire", cfg);
  INFO(r.err);
  CHECK(r.exit == 77);
  CHECK(r.err.find("its file was not touched") != std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(std::filesystem::exists(path));
  CHECK(s->exec("SELECT state FROM lethe.archives").text(0, 0) == "spooled");
  CHECK(count(*s, "SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'destroyed'") == 0);
  CHECK(count(*s, "SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'destroy_failed'") ==
        1);
  CHECK(t.lethe("archive verify").exit == 0);

  t.alter_roles(db::grants_sql(t.settings()));
  CHECK(t.lethe("archive expire", cfg).exit == 0);
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(t.lethe("archive verify").exit == 0);
  CHECK(t.lethe("audit verify").exit == 0);
}
