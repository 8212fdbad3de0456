// C2/C6/C7/C10: archive before purge, crash safety at each step, verify, restore, expire.
#include "support/cluster.hpp"
#include "worker/archive/tar.hpp"
#include "worker/audit/trail.hpp"
#include "worker/crypto/esdk.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
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

// md5 per PII-map table over the rows of held orders whose PII is due.
std::string held_rows_digest(db::Session& s) {
  std::string out;
  for (const char* table : {"orders", "shipping_addresses", "buyer_tax_info"}) {
    out +=
        s.exec(
             std::string(
                 "SELECT coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '-') FROM ") +
                 table +
                 " x WHERE x.amazon_order_id IN (SELECT amazon_order_id FROM "
                 "lethe.pii_state_public_orders WHERE held AND due_at <= $1::timestamptz)",
             {k_as_of})
            .text(0, 0) +
        " ";
  }
  return out;
}

long long held_due(db::Session& s) {
  return s
      .exec("SELECT count(*) FROM lethe.pii_state_public_orders WHERE held AND due_at <= "
            "$1::timestamptz",
            {k_as_of})
      .integer(0, 0);
}

// Business orders whose PII is due (by any clock) and still present.
long long business_due_with_pii(db::Session& s) {
  return s
      .exec("SELECT count(*) FROM orders WHERE is_business_order AND buyer_name <> '[redacted]' "
            "AND amazon_order_id IN (SELECT amazon_order_id FROM lethe.pii_state_public_orders "
            "WHERE due_at <= $1::timestamptz)",
            {k_as_of})
      .integer(0, 0);
}

std::vector<std::string> spool_files(const test::TestDb& t) {
  std::vector<std::string> out;
  std::filesystem::path dir = t.dir() / "archive-spool";
  if (std::filesystem::exists(dir)) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      out.push_back(e.path().filename().string());
    }
  }
  return out;
}

} // namespace

TEST_CASE(
    "archive run: held orders are archived, recorded, then sanitized, and the purge waits for it") {
  test::TestDb t("archive_flow", 400, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  t.approve(); // `lethe check` wants an approved schema
  auto s = t.admin();
  long long held = held_due(*s);
  REQUIRE(held > 20);
  std::vector<std::string> pii = t.pii_values();

  // The purge leaves held orders alone until an archive holds them.
  auto cfg =
      t.write_config("roomy.toml", test::set_key(t.config_text(), "max_fraction_of_table", "1.0"));
  REQUIRE(t.lethe("purge --as-of '" + k_as_of + "'", cfg).exit == 0);
  CHECK(business_due_with_pii(*s) == held);

  test::RunResult r = t.lethe("archive run --json --as-of '" + k_as_of + "'", cfg);
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(field(r.out, "orders_archived") == std::to_string(held));
  // The run's steps, in the order they ran, each timed.
  nlohmann::ordered_json out = nlohmann::ordered_json::parse(r.out);
  std::vector<std::string> steps;
  for (const auto& [step, seconds] : out.at("steps_seconds").items()) {
    steps.push_back(step);
    CHECK(seconds.get<double>() >= 0);
  }
  CHECK(steps == std::vector<std::string>{"discard_orphans", "select_held_orders", "write_archive",
                                          "verify_written", "record_archive", "sanitize_archived"});
  std::string id = field(r.out, "archive_id");
  db::Rows cat = s->exec(
      "SELECT path, size_bytes, sha256, orders, retention_until::text, state FROM lethe.archives");
  REQUIRE(cat.size() == 1);
  CHECK(cat.integer(0, 3) == held);
  CHECK(cat.text(0, 4) == "2036-06-30");
  CHECK(cat.text(0, 5) == "spooled");
  CHECK(s->exec("SELECT count(*) FROM lethe.archived_orders WHERE archive_id = $1", {id})
            .integer(0, 0) == held);
  // Archived orders' PII is gone, nothing is held any more, and the spool holds just this file.
  CHECK(business_due_with_pii(*s) == 0);
  CHECK(held_due(*s) == 0);
  CHECK(spool_files(t) == std::vector<std::string>{id + ".lethe-archive"});
  CHECK(t.lethe("check --as-of '" + k_as_of + "'").exit == 0);
  // The file is owner-only and the spool directory too.
  const auto owner_rw = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
  CHECK((std::filesystem::status(cat.text(0, 0)).permissions() & std::filesystem::perms::all) ==
        owner_rw);
  // No PII reached the output, the logs or the audit trail.
  test::require_no_pii(r.out + r.err, pii);
  test::require_no_pii(
      s->exec("SELECT string_agg(l::text, E'\\n') FROM lethe.audit_log l").at(0, 0).value_or(""),
      pii);
  // A second run has nothing to archive.
  test::RunResult again = t.lethe("archive run --json --as-of '" + k_as_of + "'", cfg);
  CHECK(again.exit == 0);
  CHECK(field(again.out, "exit_reason") == "nothing_held");
}

TEST_CASE("archive run: a crash at each step never leaves purged orders without an archive") {
  for (std::string point :
       {"archive:written", "archive:renamed", "archive:verified", "archive:recorded"}) {
    INFO(point);
    test::TestDb t("archive_crash", 150, "2026-06-30");
    t.make_archive_keys();
    t.migrate_and_grant();
    auto s = t.admin();
    long long held = held_due(*s);
    REQUIRE(held > 5);
    std::string before = held_rows_digest(*s);
    test::RunResult crashed =
        test::run_shell("LETHE_CRASH_AT=" + point + " " LETHE_BIN " --config " +
                            t.config().string() + " archive run --as-of '" + k_as_of + "'",
                        t.dir());
    REQUIRE(crashed.exit == 99);
    long long cataloged = s->exec("SELECT count(*) FROM lethe.archives").integer(0, 0);
    if (point == "archive:recorded") {
      // The archive is durable and recorded; its orders are no longer held.
      CHECK(cataloged == 1);
      CHECK(t.lethe("archive verify").exit == 0);
    } else {
      // Nothing recorded, nothing purged: the held rows are exactly as before.
      CHECK(cataloged == 0);
      CHECK(held_rows_digest(*s) == before);
      CHECK(spool_files(t).size() == 1); // the orphan (temporary or renamed)
    }
    CHECK(business_due_with_pii(*s) == held);

    test::RunResult next = t.lethe("archive run --json --as-of '" + k_as_of + "'");
    INFO(next.err);
    REQUIRE(next.exit == 0);
    CHECK(s->exec("SELECT count(*) FROM lethe.archives").integer(0, 0) == 1);
    if (point != "archive:recorded") {
      CHECK(field(next.out, "orphans_discarded") == "1");
      CHECK(next.err.find("event=archive.orphan_discarded") != std::string::npos);
    }
    CHECK(business_due_with_pii(*s) == 0);
    CHECK(spool_files(t).size() == 1);
    CHECK(t.lethe("archive verify --read-data --private-key " + (t.dir() / "archive.pem").string())
              .exit == 0);
    CHECK(s->exec("SELECT count(*) FROM lethe.archived_orders").integer(0, 0) == held);
  }
}

TEST_CASE("archive verify: a corrupted byte is caught without the key, members checked with it") {
  test::TestDb t("archive_verify", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  auto s = t.admin();
  std::string id = s->exec("SELECT archive_id FROM lethe.archives").text(0, 0);
  std::string path = s->exec("SELECT path FROM lethe.archives").text(0, 0);
  CHECK(t.lethe("archive verify").exit == 0);
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();
  test::RunResult full = t.lethe("archive verify --json --read-data" + key);
  CHECK(full.exit == 0);
  CHECK(full.out.find("\"checked\":1") != std::string::npos);

  std::string bytes = util::read_file(path);
  std::string damaged = bytes;
  damaged[damaged.size() / 2] ^= 0x01;
  test::write_file(path, damaged);
  test::RunResult bad = t.lethe("archive verify --json");
  CHECK(bad.exit == 65);
  CHECK(bad.out.find(id + ": length or SHA-256 differs") != std::string::npos);
  CHECK(bad.err.find("HINT:") != std::string::npos);
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE kind = 'alarm' AND exit_reason = "
                "'archive_damaged'")
            .integer(0, 0) == 1);

  test::write_file(path, bytes);
  CHECK(t.lethe("archive verify").exit == 0);
  std::filesystem::remove(path);
  CHECK(t.lethe("archive verify").exit == 65);
  CHECK(t.lethe("archive mark-cold " + id + " --operator vault").exit == 0);
  test::RunResult cold = t.lethe("archive verify --json");
  CHECK(cold.exit == 0);
  CHECK(cold.out.find("\"cold\":1") != std::string::npos);
}

TEST_CASE("archive restore: into a scratch schema equal to the source, into files 0600, audited") {
  test::TestDb t("archive_restore", 200, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  std::string source =
      s->exec("SELECT md5(string_agg(x::text, E'\\n' ORDER BY x::text)) FROM orders x "
              "WHERE x.amazon_order_id IN (SELECT amazon_order_id FROM "
              "lethe.pii_state_public_orders WHERE held AND due_at <= $1::timestamptz)",
              {k_as_of})
          .text(0, 0);
  std::string source_class = s->exec("SELECT md5(string_agg(x::text, E'\\n' ORDER BY x::text)) "
                                     "FROM buyer_tax_classifications x "
                                     "WHERE x.tax_info_id IN (SELECT tax_info_id FROM "
                                     "buyer_tax_info WHERE amazon_order_id IN "
                                     "(SELECT amazon_order_id FROM lethe.pii_state_public_orders "
                                     "WHERE held AND due_at <= $1::timestamptz))",
                                     {k_as_of})
                                 .text(0, 0);
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  std::string id = s->exec("SELECT archive_id FROM lethe.archives").text(0, 0);
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();

  CHECK(t.lethe("archive restore " + id + key + " --into-db scratch").exit == 64); // no --reason
  test::RunResult r = t.lethe("archive restore " + id + key +
                              " --into-db scratch --reason 'tax audit 2027' --operator dana");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(test::table_digest(*s, "scratch.public_orders") == source);
  // Business orders carry one or two classifications; all of them were archived.
  CHECK(test::table_digest(*s, "scratch.public_buyer_tax_classifications") == source_class);
  db::Rows audit =
      s->exec("SELECT actor, details FROM lethe.audit_log WHERE job = 'archive restore'");
  REQUIRE(audit.size() == 1);
  CHECK(audit.text(0, 0) == "dana");
  CHECK(audit.text(0, 1).find("\"reason\":\"tax audit 2027\"") != std::string::npos);

  std::filesystem::path out = t.dir() / "restored";
  REQUIRE(
      t.lethe("archive restore " + id + key + " --into " + out.string() + " --reason 'legal hold'")
          .exit == 0);
  std::filesystem::path part = out / "public.orders" / "part-00001.csv";
  REQUIRE(std::filesystem::exists(part));
  CHECK((std::filesystem::status(part).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  CHECK(std::filesystem::exists(out / "manifest.json"));
}

TEST_CASE("archive expire: past retention destroyed and recorded, cold ones reported") {
  test::TestDb t("archive_expire", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  std::string path = s->exec("SELECT path FROM lethe.archives").text(0, 0);
  test::RunResult early = t.lethe("archive expire");
  CHECK(early.exit == 0);
  CHECK(std::filesystem::exists(path));
  // Retention ends by the server's clock, not by a date the client names.
  test::RunResult ahead = t.lethe("archive expire --as-of 2040-01-01 --operator erin");
  CHECK(ahead.exit == 64);
  CHECK(std::filesystem::exists(path));
  s->exec("UPDATE lethe.archives SET retention_until = current_date - 1");
  test::RunResult late = t.lethe("archive expire --operator erin");
  INFO(late.err);
  CHECK(late.exit == 0);
  CHECK_FALSE(std::filesystem::exists(path));
  db::Rows row = s->exec("SELECT state, destroyed_by FROM lethe.archives");
  CHECK(row.text(0, 0) == "destroyed");
  CHECK(row.text(0, 1) == "erin");
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'archive expire' AND exit_reason "
                "= 'destroyed'")
            .integer(0, 0) == 1);

  // A second archive, moved to cold storage, is reported for the operator instead.
  s->exec("UPDATE orders SET is_business_order = true WHERE amazon_order_id IN (SELECT "
          "amazon_order_id FROM orders "
          "WHERE NOT is_business_order AND buyer_name <> '[redacted]' AND shipped_at < "
          "$1::timestamptz - interval '31 days' LIMIT 3)",
          {k_as_of});
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  std::string id2 =
      s->exec("SELECT archive_id FROM lethe.archives WHERE state = 'spooled'").text(0, 0);
  REQUIRE(t.lethe("archive mark-cold " + id2).exit == 0);
  s->exec("UPDATE lethe.archives SET retention_until = current_date - 1 WHERE archive_id = $1",
          {id2});
  test::RunResult cold = t.lethe("archive expire");
  CHECK(cold.out.find("destroy it there") != std::string::npos);
  CHECK(s->exec("SELECT state FROM lethe.archives WHERE archive_id = $1", {id2}).text(0, 0) ==
        "cold");
  CHECK(t.lethe("archive mark-destroyed " + id2 + " --operator erin").exit == 0);
  CHECK(s->exec("SELECT state FROM lethe.archives WHERE archive_id = $1", {id2}).text(0, 0) ==
        "destroyed");
}

TEST_CASE("archive restore: a crafted archive cannot write outside --into or inject SQL") {
  // Anyone with the public key can write a well-formed archive; restore must not trust its names.
  test::TestDb t("archive_crafted", 0);
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  crypto::RsaKey pub = crypto::load_public_key(t.dir() / "archive.pub");
  auto craft = [&](const std::string& id, const std::string& member, const std::string& tables) {
    std::filesystem::path path = t.dir() / (id + ".lethe-archive");
    std::string bytes;
    crypto::esdk::EncryptParams p;
    p.recipients.push_back({"lethe-archive", "archive-2026", &pub});
    p.context = {{"lethe-archive-id", id}};
    crypto::esdk::Encryptor enc(p, [&](const unsigned char* d, size_t n) {
      bytes.append(reinterpret_cast<const char*>(d), n);
    });
    {
      lethe::archive::TarWriter tar([&](const unsigned char* d, size_t n) { enc.update(d, n); });
      tar.add("tables.json", tables);
      tar.add(member, "id\n1\n");
      // A manifest true to the member, so that the checks after it are reached.
      tar.add("manifest.json", std::string("{\"members\":[{\"name\":\"") + member +
                                   "\",\"rows\":1,\"sha256\":\"" +
                                   crypto::hex(crypto::sha256(std::string("id\n1\n"))) +
                                   "\"}],\"tables\":" + tables + "}");
      tar.finish();
    }
    enc.finish();
    test::write_file(path, bytes);
    // Cataloged with its archive_written record, as a real one would be: restore's checks of
    // the file against the audit chain pass, so its member checks are what is tested here.
    std::string sha = crypto::hex(crypto::sha256(bytes));
    s->exec(
        "INSERT INTO lethe.archives (archive_id, path, size_bytes, sha256, as_of, retention_until, "
        "pii_map_digest, recipients, row_counts, orders) VALUES ($1, $2, $3, $4, now(), "
        "'2036-01-01', 'x', '[]', '{}', 1)",
        {id, path.string(), std::to_string(bytes.size()), sha});
    audit::Trail(t.dir() / "audit-anchor", t.dir() / "audit-spool",
                 util::Identity{"tester", "x", ""})
        .append(*s, audit::Record{audit::Kind::run, "archive run", "recorded", "archive_written",
                                  std::nullopt,
                                  "{\"orders\":1,\"bytes\":" + std::to_string(bytes.size()) + "}",
                                  "{\"archive_id\":\"" + id + "\",\"sha256\":\"" + sha + "\"}"});
  };
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();
  const std::string escaped = "escaped-" + t.name() + ".csv";
  craft("a-evil-path", "../../" + escaped, "[]");
  test::RunResult r = t.lethe("archive restore a-evil-path" + key + " --into " +
                              (t.dir() / "out").string() + " --reason test");
  CHECK(r.exit == 65);
  CHECK(r.err.find("unexpected name") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(t.dir().parent_path() / escaped)); // out/../../

  craft(
      "a-evil-sql", "public.t/part-00001.csv",
      R"([{"table":"public.t","columns":[{"name":"id","type":"int); DROP TABLE lethe.audit_log; --"}]}])");
  test::RunResult q =
      t.lethe("archive restore a-evil-sql" + key + " --into-db scratch --reason test");
  CHECK(q.exit == 65);
  CHECK(q.err.find("column type this server does not know") != std::string::npos);
  CHECK(s->exec("SELECT to_regclass('lethe.audit_log') IS NOT NULL").text(0, 0) == "t");
}

TEST_CASE("archive run: another database's archive in the spool is left alone, not discarded") {
  test::TestDb a("archive_foreign_a", 120, "2026-06-30");
  test::TestDb b("archive_foreign_b", 120, "2026-06-30");
  for (const test::TestDb* t : {&a, &b}) {
    t->make_archive_keys();
    t->migrate_and_grant();
  }
  REQUIRE(a.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  std::filesystem::path theirs = a.admin()->exec("SELECT path FROM lethe.archives").text(0, 0);
  std::filesystem::create_directories(b.dir() / "archive-spool");
  std::filesystem::permissions(b.dir() / "archive-spool", std::filesystem::perms::owner_all);
  std::filesystem::path copied = b.dir() / "archive-spool" / theirs.filename();
  std::filesystem::copy_file(theirs, copied);
  test::RunResult r = b.lethe("archive run --json --as-of '" + k_as_of + "'");
  INFO(r.err);
  CHECK(r.exit == 0);
  CHECK(std::filesystem::exists(copied));
  CHECK(r.err.find("event=archive.foreign_file") != std::string::npos);
  CHECK(field(r.out, "orphans_discarded") == "0");
}
