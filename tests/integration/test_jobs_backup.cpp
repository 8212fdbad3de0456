// C3, C4, C6: encrypted backups and restore drills against a real TLS PostgreSQL, real pg_dump
// and pg_restore, through the real binary, as the roles `lethe grants` makes for them.
#include "support/cluster.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

using namespace lethe;

namespace {

// A configuration connecting as `role` (its password set here), held orders erased at once.
std::filesystem::path role_config(const test::TestDb& t, const std::string& role,
                                  const std::string& extra = {}) {
  t.alter_roles("ALTER ROLE " + role + " PASSWORD 'pw-" + role + "'");
  std::filesystem::path p = t.dir() / (role + ".password");
  test::write_file(p, "pw-" + role + "\n", 0600);
  std::string text = test::set_key(t.config_text(role, p.string()), "held_orders", "\"erase\"");
  return t.write_config(role + ".toml", text + extra);
}

// A database ready for backups: migrated, granted, purged (nothing overdue), with a backup key.
void prepare(const test::TestDb& t) {
  t.migrate_and_grant();
  t.make_keys("backup");
  test::RunResult p = t.lethe("purge --force");
  INFO(p.err);
  REQUIRE(p.exit == 0);
}

nlohmann::json run_json(const test::TestDb& t, const std::string& args,
                        const std::filesystem::path& cfg, int exit = 0) {
  test::RunResult r = t.lethe(args + " --json", cfg);
  INFO(args << "\n" << r.out << r.err);
  REQUIRE(r.exit == exit);
  return nlohmann::json::parse(r.out);
}

long long scalar(db::Session& s, const std::string& sql) {
  return s.exec(sql).integer(0, 0);
}

// Bytes that begin a pg_dump custom-format archive: a plaintext dump.
bool holds_plain_dump(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  char magic[5] = {};
  in.read(magic, 5);
  return in.gcount() == 5 && std::string(magic, 5) == "PGDMP";
}

std::vector<std::filesystem::path> files_under(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) {
      out.push_back(it->path());
    }
  }
  return out;
}

} // namespace

TEST_CASE("backup then drill: an encrypted dump with no plaintext on disk and no password in "
          "argv, restored and proven, the scratch database dropped",
          "[backup][drill]") {
  test::TestDb t("backup_drill", 300);
  prepare(t);
  // pg_dump through a wrapper that records its arguments and whether it got a password.
  std::filesystem::path wrapper = t.dir() / "pg_dump-wrapper";
  test::write_file(wrapper,
                   "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + (t.dir() / "argv.txt").string() +
                       "\n[ -n \"$PGPASSWORD\" ] && echo yes > " +
                       (t.dir() / "had-password.txt").string() + "\nexec pg_dump \"$@\"\n",
                   0700);
  std::string text = util::read_file(role_config(t, "lethe_backup"));
  text = test::set_key(text, "pg_dump", "\"" + wrapper.string() + "\"");
  std::filesystem::path bcfg = t.write_config("lethe_backup.toml", text);
  auto dcfg = role_config(t, "lethe_drill");

  // Watch the spool and the test directory while the backup runs: no plaintext dump appears.
  std::atomic<bool> done{false};
  std::atomic<int> plaintext{0};
  std::thread watcher([&] {
    while (!done) {
      for (const auto& f : files_under(t.dir())) {
        if (holds_plain_dump(f)) {
          ++plaintext;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  test::RunResult r = t.lethe("backup run --json", bcfg);
  done = true;
  watcher.join();
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(plaintext == 0);
  nlohmann::json b = nlohmann::json::parse(r.out);
  std::string id = b["backup_id"];
  CHECK(b["tables"]["public.orders"] == 300);

  std::string argv = util::read_file(t.dir() / "argv.txt");
  CHECK(argv.find("pw-lethe_backup") == std::string::npos);
  CHECK(argv.find("--snapshot=") != std::string::npos);
  CHECK(util::exists(t.dir() / "had-password.txt")); // it came through the environment
  // The spool holds the two sealed files and nothing readable.
  std::vector<std::filesystem::path> spool = files_under(t.dir() / "backup-spool");
  CHECK(spool.size() == 2);
  for (const auto& f : spool) {
    CHECK_FALSE(holds_plain_dump(f));
  }

  auto s = t.admin();
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.backups WHERE state = 'spooled'") == 1);
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'backup_written'") ==
        1);
  CHECK(t.lethe("backup verify", dcfg).exit == 0);
  test::RunResult rd =
      t.lethe("backup verify --read-data --private-key " + (t.dir() / "backup.pem").string(), dcfg);
  INFO(rd.out << rd.err);
  CHECK(rd.exit == 0);

  nlohmann::json d =
      run_json(t, "drill run --private-key " + (t.dir() / "backup.pem").string(), dcfg);
  CHECK(d["result"] == "SUCCESSFUL");
  CHECK(d["backup_id"] == id);
  CHECK(d["orders_resurrected_before_replay"] == 0);
  CHECK(d["orders_resurrected_after_replay"] == 0);
  CHECK(d["rto_seconds"].get<double>() > 0);
  CHECK(d["database_kept"] == false);
  CHECK(scalar(*s, "SELECT count(*) FROM pg_database WHERE datname = '" +
                       d["database"].get<std::string>() + "'") == 0);
  nlohmann::json list = run_json(t, "drill list", dcfg);
  REQUIRE(list.size() == 1);
  CHECK(list[0]["result"] == "SUCCESSFUL");
  CHECK(list[0]["backup_id"] == id);
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.drills d JOIN lethe.audit_log l ON l.seq = "
                   "d.evidence_seq WHERE l.exit_reason = 'successful'") == 1);

  // A real recovery: named by an operator with a reason, kept, audited.
  std::string into = t.name() + "_r";
  std::string restore = "restore --backup " + id + " --private-key " +
                        (t.dir() / "backup.pem").string() + " --into-db " + into;
  test::RunResult refused = t.lethe(restore + " --reason 'lost volume'", dcfg);
  CHECK(refused.exit == 64); // no --operator
  CHECK(refused.err.find("HINT:") != std::string::npos);
  test::RunResult rr = t.lethe("--operator bob " + restore + " --reason 'lost volume'", dcfg);
  INFO(rr.out << rr.err);
  REQUIRE(rr.exit == 0);
  {
    auto restored = test::admin_session(into);
    CHECK(scalar(*restored,
                 "SELECT count(*) FROM lethe.backup_markers WHERE backup_id = '" + id + "'") == 1);
    CHECK(scalar(*restored, "SELECT count(*) FROM orders") == 300);
  }
  test::admin_session("postgres")->exec("DROP DATABASE " + db::quote_ident(into) + " WITH (FORCE)");
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.audit_log WHERE job = 'restore' AND actor = 'bob' "
                   "AND exit_reason = 'successful' AND details::jsonb ->> 'reason' = 'lost "
                   "volume'") == 1);
  list = run_json(t, "drill list", dcfg);
  REQUIRE(list.size() == 2);
  CHECK(list[1]["kind"] == "restore");
  CHECK(list[1]["database_kept"] == true);
  CHECK(t.lethe("audit verify").exit == 0);
  // No PII value in anything lethe printed or recorded.
  std::vector<std::string> pii = t.pii_values();
  REQUIRE(pii.size() > 100);
  std::string said =
      r.out + r.err + rd.out + rd.err + rr.out + rr.err +
      s->exec("SELECT string_agg(l::text, E'\\n') FROM lethe.audit_log l").text(0, 0) +
      s->exec("SELECT string_agg(d::text, E'\\n') FROM lethe.drills d").text(0, 0);
  CHECK(test::require_no_pii(said, pii) == pii.size());
}

TEST_CASE("drill: subjects erased after the backup are found in the restore, then replayed away",
          "[backup][drill]") {
  test::TestDb t("backup_replay", 200);
  prepare(t);
  auto bcfg = role_config(t, "lethe_backup");
  auto dcfg = role_config(t, "lethe_drill");
  auto rcfg = role_config(t, "lethe_request");
  REQUIRE(t.lethe("backup run", bcfg).exit == 0);

  auto s = t.admin();
  std::vector<std::string> ids;
  db::Rows r = s->exec("SELECT amazon_order_id FROM orders ORDER BY amazon_order_id LIMIT 3");
  for (size_t i = 0; i < r.size(); ++i) {
    ids.push_back(r.text(i, 0));
  }
  test::RunResult add = t.lethe("--operator alice request add --action delete --reason notice "
                                "--amazon-ref R-1 --scope order:" +
                                    ids[0] + "," + ids[1] + "," + ids[2],
                                rcfg);
  INFO(add.err);
  REQUIRE(add.exit == 0);
  REQUIRE(t.lethe("request run", rcfg).exit == 0);
  // The request tracks the backup as a copy that still holds its orders.
  test::RunResult show = t.lethe("request show 1 --json", rcfg);
  nlohmann::json req = nlohmann::json::parse(show.out);
  CHECK(req["state"] == "live_erased");

  // A drill killed after its restore leaves its scratch database; the next drill drops it.
  test::RunResult killed = test::run_shell(
      "LETHE_CRASH_AT=drill:restored " + std::string(LETHE_BIN) + " --config " + dcfg.string() +
          " drill run --private-key " + (t.dir() / "backup.pem").string(),
      t.dir());
  CHECK(killed.exit == 99);
  // This database's scratch databases (other tests drill beside it on the same server).
  std::string endpoint =
      test::cluster().host + ":" + std::to_string(test::cluster().port) + "/" + t.name();
  std::string scratch = "SELECT count(*) FROM pg_database WHERE datname LIKE 'lethe\\_drill\\_" +
                        crypto::hex(crypto::sha256(endpoint)).substr(0, 8) + "\\_%'";
  auto postgres = test::admin_session("postgres");
  CHECK(scalar(*postgres, scratch) == 1);
  test::RunResult dr = t.lethe("drill run --json --random-within 7 --private-key " +
                                   (t.dir() / "backup.pem").string(),
                               dcfg);
  INFO(dr.err);
  REQUIRE(dr.exit == 0);
  nlohmann::json d = nlohmann::json::parse(dr.out);
  CHECK(d["result"] == "SUCCESSFUL");
  CHECK(d["orders_resurrected_before_replay"] == 3);
  CHECK(d["orders_resurrected_after_replay"] == 0);
  CHECK(scalar(*postgres, scratch) == 0);
  // Nothing the drill printed names an order of the erased subjects.
  for (const std::string& id : ids) {
    CHECK(dr.out.find(id) == std::string::npos);
    CHECK(dr.err.find(id) == std::string::npos);
  }

  // Expiring the backup closes it in the request, which then completes (as the owner vacuums).
  s->exec("UPDATE lethe.backups SET retention_until = now() - interval '1 minute'");
  nlohmann::json ex = run_json(t, "backup expire", bcfg);
  CHECK(ex["destroyed"] == 1);
  CHECK(files_under(t.dir() / "backup-spool").empty());
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.backups WHERE state = 'destroyed' AND "
                   "destroyed_by IS NOT NULL") == 1);
  s->exec("VACUUM orders, shipping_addresses, order_items, buyer_tax_info, "
          "buyer_tax_classifications");
  REQUIRE(t.lethe("request run", rcfg).exit == 0);
  CHECK(nlohmann::json::parse(t.lethe("request show 1 --json", rcfg).out)["state"] == "complete");
  CHECK(t.lethe("audit verify").exit == 0);
}

TEST_CASE("backup: a flipped byte fails verify, and the drill names the failing check",
          "[backup][drill]") {
  test::TestDb t("backup_flip", 100);
  prepare(t);
  auto bcfg = role_config(t, "lethe_backup");
  auto dcfg = role_config(t, "lethe_drill");
  nlohmann::json b = run_json(t, "backup run", bcfg);
  std::filesystem::path file = b["path"].get<std::string>();
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(file) / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(file) / 2));
    c = static_cast<char>(c ^ 0x01);
    f.write(&c, 1);
  }
  test::RunResult v = t.lethe("backup verify", dcfg);
  CHECK(v.exit == 65);
  CHECK(v.out.find("SHA-256") != std::string::npos);
  test::RunResult d =
      t.lethe("drill run --json --private-key " + (t.dir() / "backup.pem").string(), dcfg);
  CHECK(d.exit == 1);
  nlohmann::json j = nlohmann::json::parse(d.out);
  CHECK(j["result"] == "FAILED");
  CHECK(j["failed_check"] == "evidence");
  CHECK(d.err.find("HINT:") != std::string::npos);
  auto s = t.admin();
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.audit_log WHERE kind = 'alarm' AND exit_reason = "
                   "'drill_failed'") == 1);
}

TEST_CASE("drill: past drill.timeout_s it is TIMED_OUT, recorded as an alarm, its database dropped",
          "[drill]") {
  test::TestDb t("drill_timeout", 50);
  prepare(t);
  REQUIRE(t.lethe("backup run", role_config(t, "lethe_backup")).exit == 0);
  std::filesystem::path slow = t.dir() / "slow-pg_restore";
  test::write_file(slow, "#!/bin/sh\nsleep 30\nexec pg_restore \"$@\"\n", 0700);
  std::string text = util::read_file(role_config(t, "lethe_drill"));
  text = test::set_key(text, "pg_restore", "\"" + slow.string() + "\"");
  text = test::set_key(text, "timeout_s", "10");
  auto dcfg = t.write_config("slow.toml", text);
  auto started = std::chrono::steady_clock::now();
  test::RunResult d =
      t.lethe("drill run --json --private-key " + (t.dir() / "backup.pem").string(), dcfg);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(d.exit == 1);
  CHECK(took < 25); // stopped at the deadline, not after the child
  nlohmann::json j = nlohmann::json::parse(d.out);
  CHECK(j["result"] == "TIMED_OUT");
  CHECK(j["failed_check"] == "restore");
  CHECK(j["database_kept"] == false);
  auto s = t.admin();
  CHECK(scalar(*s, "SELECT count(*) FROM pg_database WHERE datname = '" +
                       j["database"].get<std::string>() + "'") == 0);
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.drills WHERE result = 'TIMED_OUT' AND rto_seconds "
                   "IS NULL") == 1);
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.audit_log WHERE kind = 'alarm' AND exit_reason = "
                   "'drill_timed_out'") == 1);
}

TEST_CASE("backup: a kill at any step leaves no cataloged partial backup, and the next run "
          "discards what it left",
          "[backup]") {
  test::TestDb t("backup_kill", 100);
  prepare(t);
  auto bcfg = role_config(t, "lethe_backup");
  auto s = t.admin();
  for (const char* point : {"backup:marked", "backup:dumped", "backup:renamed"}) {
    INFO(point);
    test::RunResult k =
        test::run_shell("LETHE_CRASH_AT=" + std::string(point) + " " + std::string(LETHE_BIN) +
                            " --config " + bcfg.string() + " backup run",
                        t.dir());
    CHECK(k.exit == 99);
    CHECK(scalar(*s, "SELECT count(*) FROM lethe.backups") == 0);
  }
  // Each killed run discarded what the one before left; the last left a committed dump and its
  // manifest, never cataloged.
  long long left = static_cast<long long>(files_under(t.dir() / "backup-spool").size());
  CHECK(left == 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20)); // files strictly older than the run
  nlohmann::json b = run_json(t, "backup run", bcfg);
  CHECK(b["orphans_discarded"] == left);
  CHECK(files_under(t.dir() / "backup-spool").size() == 2);
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.backups") == 1);
  // The killed runs are closed as abandoned by the next run; the chain still verifies.
  CHECK(scalar(*s, "SELECT count(*) FROM lethe.job_runs WHERE job = 'backup run' AND outcome = "
                   "'abandoned'") == 3);
  CHECK(t.lethe("audit verify").exit == 0);
}

TEST_CASE("backup: a retention that could outlive a deletion request's 90 days is refused",
          "[backup]") {
  test::TestDb t("backup_retention", 10);
  t.migrate_and_grant();
  t.make_archive_keys();
  std::string text = t.config_text();
  auto check = [&](const std::string& keep, const std::string& interval) {
    std::string c =
        test::set_key(test::set_key(text, "keep_days", keep), "interval_hours", interval);
    return t.lethe("config check", t.write_config("retention.toml", c));
  };
  test::RunResult bad = check("88", "48");
  CHECK(bad.exit == 78);
  CHECK(bad.err.find("backup.keep_days") != std::string::npos);
  CHECK(bad.err.find("90 days") != std::string::npos);
  CHECK(bad.err.find("retention.toml:") != std::string::npos); // where to fix it
  CHECK(check("90", "24").exit == 78);                         // out of range on its own
  test::RunResult ok = check("88", "24");                      // 88 d + 24 h + 24 h = 90 d
  INFO(ok.err);
  CHECK(ok.exit == 0);
}
