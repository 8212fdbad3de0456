// C1: the nightly purge against a real TLS PostgreSQL, through the real binary.
#include "support/cluster.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/clock.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/runtime/context.hpp"
#include "worker/sanitize/overdue.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

// A config for `t` without the safety limits in the way (tests of the limits set their own).
std::filesystem::path roomy_config(const test::TestDb& t, std::string text = {}) {
  if (text.empty()) {
    text = t.config_text();
  }
  text = test::set_key(text, "max_fraction_of_table", "1.0");
  text = test::set_key(text, "max_rows_per_run", "10000000");
  return t.write_config("roomy.toml", text);
}

void boundary_orders(db::Session& s) {
  test::insert_order(s, k_as_of, {"A-29d23h", "Shipped", "29 days 23 hours", "29 days 23 hours"});
  test::insert_order(s, k_as_of, {"B-30d1h", "Shipped", "30 days 1 hour", "30 days 1 hour"});
  test::insert_order(s, k_as_of, {"C-30d", "Shipped", "30 days", "30 days"});
  test::insert_order(s, k_as_of, {"D-cancel-31d", "Canceled", "", "31 days"});
  test::insert_order(s, k_as_of, {"E-pending-31d", "Pending", "", "31 days"});
  test::insert_order(s, k_as_of, {"F-held-40d", "Shipped", "40 days", "40 days", true});
  test::insert_order(s, k_as_of, {"G-clean-40d", "Shipped", "40 days", "40 days", false, false});
  test::insert_order(s, k_as_of, {"H-pending-91d", "Unshipped", "", "91 days"});
}

std::string row(db::Session& s, const std::string& sql, const std::string& id) {
  db::Rows r = s.exec(sql, {id});
  std::string out;
  for (size_t c = 0; c < r.columns().size(); ++c) {
    out += (c ? "|" : "") + r.at(0, c).value_or("NULL");
  }
  return out;
}

const std::string k_order_pii =
    "SELECT buyer_email, buyer_name FROM orders WHERE amazon_order_id = $1";
const std::string k_order_rest =
    "SELECT seller_id, marketplace_id, purchase_date, last_update_date, order_status, shipped_at, "
    "is_business_order FROM orders WHERE amazon_order_id = $1";
const std::string k_address = "SELECT name, address_line1, phone, state_or_region, country_code "
                              "FROM shipping_addresses WHERE amazon_order_id = $1";

} // namespace

TEST_CASE("purge: exactly the due rows lose exactly their PII, the rest is byte-identical") {
  test::TestDb t("purge_boundary", 0);
  t.migrate_and_grant();
  t.approve(); // `lethe check` wants an approved schema
  auto s = t.admin();
  boundary_orders(*s);
  auto cfg = roomy_config(t);
  std::vector<std::string> pii = t.pii_values();
  std::string items_before = test::table_digest(*s, "order_items");
  std::map<std::string, std::string> rest_before;
  for (const char* id : {"A-29d23h", "B-30d1h", "C-30d", "D-cancel-31d", "E-pending-31d",
                         "F-held-40d", "G-clean-40d", "H-pending-91d"}) {
    rest_before[id] = row(*s, k_order_rest, id);
  }
  std::string held_before = row(*s, k_order_pii, "F-held-40d") + row(*s, k_address, "F-held-40d");
  std::string tax_before = test::table_digest(*s, "buyer_tax_info");

  SECTION("dry run changes nothing and says what it would do") {
    std::string all_before =
        test::table_digest(*s, "orders") + test::table_digest(*s, "shipping_addresses");
    test::RunResult d = t.lethe("purge --dry-run --json --as-of '" + k_as_of + "'", cfg);
    INFO(d.err);
    REQUIRE(d.exit == 0);
    CHECK(d.out.find("\"orders_due\":4") != std::string::npos);
    CHECK(d.out.find("{\"table\":\"public.orders\",\"rows\":4,\"held_awaiting_archive\":1") !=
          std::string::npos);
    CHECK(test::table_digest(*s, "orders") + test::table_digest(*s, "shipping_addresses") ==
          all_before);
  }

  SECTION("the run, a second run, and re-synced PII") {
    test::RunResult r = t.lethe("purge --json --as-of '" + k_as_of + "' --operator erin", cfg);
    INFO(r.err);
    REQUIRE(r.exit == 0);
    CHECK(r.out.find("\"exit_reason\":\"done\"") != std::string::npos);
    CHECK(r.out.find("\"orders_done\":4") != std::string::npos);
    // Where the time went, step by step, in the order the steps ran.
    nlohmann::ordered_json out = nlohmann::ordered_json::parse(r.out);
    std::vector<std::string> steps;
    for (const auto& [step, seconds] : out.at("steps_seconds").items()) {
      steps.push_back(step);
      CHECK(seconds.get<double>() >= 0);
    }
    CHECK(steps == std::vector<std::string>{"lock", "drift", "plan", "count", "batches", "vacuum",
                                            "record"});

    // Not due: untouched.
    CHECK(row(*s, k_order_pii, "A-29d23h") == "b-A-29d23h@example.org|Name A-29d23h");
    CHECK(row(*s, k_order_pii, "E-pending-31d") ==
          "b-E-pending-31d@example.org|Name E-pending-31d");
    CHECK(row(*s, k_address, "A-29d23h") ==
          "Name A-29d23h|1 Street A-29d23h|+1-555-A-29d23h|WA|US");
    // Held: untouched, tax info too.
    CHECK(row(*s, k_order_pii, "F-held-40d") + row(*s, k_address, "F-held-40d") == held_before);
    CHECK(test::table_digest(*s, "buyer_tax_info") == tax_before);
    // Due: exactly the PII columns, by strategy.
    for (const char* id : {"B-30d1h", "C-30d", "D-cancel-31d", "H-pending-91d"}) {
      INFO(id);
      std::string email = "b-" + std::string(id) + "@example.org";
      CHECK(row(*s, k_order_pii, id) ==
            "hmac:" + crypto::hex(crypto::hmac_sha256("test-hmac-key", email)) + "|[redacted]");
      CHECK(row(*s, k_address, id) == "NULL|NULL|NULL|WA|US");
    }
    for (const auto& [id, before] : rest_before) {
      INFO(id);
      CHECK(row(*s, k_order_rest, id) == before);
    }
    CHECK(test::table_digest(*s, "order_items") == items_before);

    // Nothing left: the second run finds nothing to do.
    test::RunResult again = t.lethe("purge --json --as-of '" + k_as_of + "'", cfg);
    CHECK(again.exit == 0);
    CHECK(again.out.find("\"exit_reason\":\"nothing_due\"") != std::string::npos);
    CHECK(t.lethe("check --as-of '" + k_as_of + "'", cfg).exit == 0);

    // A re-sync brings PII back into a purged order: the next run purges it again.
    s->exec("UPDATE shipping_addresses SET phone = '+1-555-0100' WHERE amazon_order_id = 'C-30d'");
    test::RunResult resync = t.lethe("purge --json --as-of '" + k_as_of + "'", cfg);
    CHECK(resync.out.find("\"orders_done\":1") != std::string::npos);
    CHECK(row(*s, k_address, "C-30d") == "NULL|NULL|NULL|WA|US");

    // No PII in any output or audit row; the operator is recorded.
    test::require_no_pii(r.out + r.err + again.out + again.err + resync.out + resync.err, pii);
    db::Rows audit = s->exec("SELECT string_agg(l::text, E'\\n') FROM lethe.audit_log l");
    test::require_no_pii(audit.at(0, 0).value_or(""), pii);
    CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'purge' AND actor = 'erin' "
                  "AND outcome = 'done'")
              .integer(0, 0) == 1);
  }
}

TEST_CASE("purge: the safety limits refuse, raise an alarm, and --force overrides on record") {
  test::TestDb t("purge_safety", 300, "2026-06-30");
  t.migrate_and_grant();
  auto s = t.admin();
  std::string before = test::table_digest(*s, "orders");
  auto cfg =
      t.write_config("limits.toml", test::set_key(t.config_text(), "max_rows_per_run", "10"));
  test::RunResult r = t.lethe("purge --as-of '" + k_as_of + "'", cfg);
  CHECK(r.exit == 65);
  CHECK(r.err.find("above purge.max_rows_per_run = 10") != std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(r.err.find("--force") != std::string::npos);
  CHECK(test::table_digest(*s, "orders") == before);
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE kind = 'alarm' AND exit_reason = "
                "'safety_limit'")
            .integer(0, 0) == 1);

  test::RunResult f = t.lethe("purge --force --operator frank --as-of '" + k_as_of + "'", cfg);
  INFO(f.err);
  CHECK(f.exit == 0);
  CHECK(s->exec("SELECT details FROM lethe.audit_log WHERE job = 'purge' AND kind = 'run' AND "
                "actor = 'frank'")
            .text(0, 0)
            .find("\"forced\":true") != std::string::npos);
}

TEST_CASE("purge: a second purge while one holds the lock exits 75") {
  test::TestDb t("purge_lock", 50);
  t.migrate_and_grant();
  auto holder = t.admin();
  holder->exec("SELECT pg_advisory_lock(hashtext('lethe.purge'))");
  test::RunResult r = t.lethe("purge", roomy_config(t));
  CHECK(r.exit == 75);
  CHECK(r.err.find("another lethe purge or archive run is working") != std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(t.admin()
            ->exec("SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'lock_held'")
            .integer(0, 0) == 1);
  holder->exec("SELECT pg_advisory_unlock(hashtext('lethe.purge'))");
  CHECK(t.lethe("purge", roomy_config(t)).exit == 0);
}

TEST_CASE("purge: a future --as-of is refused unless --dry-run") {
  test::TestDb t("purge_future", 20);
  t.migrate_and_grant();
  test::RunResult r = t.lethe("purge --as-of '2999-01-01'", roomy_config(t));
  CHECK(r.exit == 64);
  CHECK(r.err.find("in the future") != std::string::npos);
  CHECK(t.lethe("purge --dry-run --as-of '2999-01-01'", roomy_config(t)).exit == 0);
}

TEST_CASE("purge: a row lock held elsewhere makes the batch back off and retry, not fail") {
  test::TestDb t("purge_rowlock", 0);
  t.migrate_and_grant();
  auto s = t.admin();
  boundary_orders(*s);
  auto cfg = roomy_config(t, test::set_key(t.config_text(), "lock_timeout_ms", "100"));
  auto blocker = t.admin();
  blocker->exec("BEGIN");
  blocker->exec("SELECT 1 FROM orders WHERE amazon_order_id = 'B-30d1h' FOR UPDATE");
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    blocker->exec("COMMIT");
  });
  test::RunResult r = t.lethe("purge --json --as-of '" + k_as_of + "'", cfg);
  release.join();
  INFO(r.err);
  CHECK(r.exit == 0);
  CHECK(r.err.find("event=purge.lock_backoff") != std::string::npos);
  CHECK(r.out.find("\"lock_retries\":0") == std::string::npos);
  CHECK(r.out.find("\"orders_done\":4") != std::string::npos);
}

TEST_CASE("purge: kill -9 mid-run, then a new run, ends where an uninterrupted run ends") {
  const long orders = 6000;
  test::TestDb killed("purge_kill", orders, "2026-06-30");
  test::TestDb whole("purge_whole", orders, "2026-06-30");
  killed.migrate_and_grant();
  killed.approve(); // `lethe check` wants an approved schema
  whole.migrate_and_grant();
  std::string args = "purge --verbose --batch-size 20 --as-of '" + k_as_of + "'";

  // Start the purge, wait until it has committed a few batches, then SIGKILL it.
  std::filesystem::path err = killed.dir() / "killed.err";
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::string cmd = std::string(LETHE_BIN) + " --config " + roomy_config(killed).string() + " " +
                      args + " >/dev/null 2>" + err.string();
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 2000; ++i) {
    std::ifstream in(err);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t batches = 0;
    for (size_t p = text.find("event=purge.batch "); p != std::string::npos;
         p = text.find("event=purge.batch ", p + 1)) {
      ++batches;
    }
    if (batches >= 5) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  // It really stopped in the middle: PII is still overdue, and a run row is left "running".
  CHECK(killed.lethe("check --as-of '" + k_as_of + "'").exit == 1);
  CHECK(killed.admin()
            ->exec("SELECT count(*) FROM lethe.job_runs WHERE job = 'purge' AND "
                   "outcome = 'running'")
            .integer(0, 0) == 1);

  CHECK(killed.lethe(args, roomy_config(killed)).exit == 0);
  CHECK(whole.lethe(args, roomy_config(whole)).exit == 0);
  auto a = killed.admin();
  auto b = whole.admin();
  for (const char* table : {"orders", "shipping_addresses", "buyer_tax_info",
                            "buyer_tax_classifications", "order_items"}) {
    INFO(table);
    CHECK(test::table_digest(*a, table) == test::table_digest(*b, table));
  }
  CHECK(killed.lethe("check --as-of '" + k_as_of + "'").exit == 0);
}

TEST_CASE("purge: SIGTERM finishes the current batch, records 'interrupted', exits 75") {
  test::TestDb t("purge_term", 6000, "2026-06-30");
  t.migrate_and_grant();
  t.approve(); // `lethe check` wants an approved schema
  std::filesystem::path err = t.dir() / "term.err";
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::string cmd = std::string(LETHE_BIN) + " --config " + roomy_config(t).string() +
                      " purge --verbose --batch-size 20 --as-of '" + k_as_of + "' >/dev/null 2>" +
                      err.string();
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 2000; ++i) {
    std::ifstream in(err);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("event=purge.batch ") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 75);
  auto s = t.admin();
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'purge' AND outcome = "
                "'interrupted' AND exit_reason = 'interrupted'")
            .integer(0, 0) == 1);
  CHECK(s->exec("SELECT outcome FROM lethe.job_runs WHERE job = 'purge'").text(0, 0) ==
        "interrupted");
  CHECK(t.lethe("check --as-of '" + k_as_of + "'").exit == 1);
  CHECK(t.lethe("purge --as-of '" + k_as_of + "'", roomy_config(t)).exit == 0);
  CHECK(t.lethe("check --as-of '" + k_as_of + "'").exit == 0);
}

TEST_CASE("purge: the purge role from `lethe grants` is enough") {
  test::TestDb t("purge_role", 400, "2026-06-30");
  t.migrate_and_grant();
  t.approve(); // `lethe check` wants an approved schema
  t.alter_roles("ALTER ROLE lethe_purge PASSWORD 'pw-purge'");
  test::write_file(t.dir() / "purge.password", "pw-purge\n", 0600);
  std::vector<std::string> pii = t.pii_values();
  auto cfg = roomy_config(t, t.config_text("lethe_purge", (t.dir() / "purge.password").string()));
  test::RunResult r = t.lethe("purge --json --as-of '" + k_as_of + "'", cfg);
  INFO(r.err);
  CHECK(r.exit == 0);
  CHECK(r.out.find("\"exit_reason\":\"done\"") != std::string::npos);
  // PostgreSQL 15 lets only the owner VACUUM: the run says so and carries on.
  CHECK(r.err.find("event=purge.vacuum_skipped") != std::string::npos);
  CHECK(t.lethe("check --as-of '" + k_as_of + "'").exit == 0);
  test::require_no_pii(r.out + r.err, pii);
}

TEST_CASE("purge: the pseudonym test in the state views means exactly hmac: and 64 lower-case "
          "hex digits") {
  test::TestDb t("purge_pseudonym_test", 0);
  auto s = t.admin();
  const std::string hex64 = crypto::hex(crypto::sha256("x"));
  // Near misses first: one digit short or long, upper case, a prefix or suffix, a multi-byte
  // character in the 69 bytes, a newline before the end.
  const std::vector<std::string> values = {"hmac:" + hex64,
                                           "hmac:" + hex64.substr(1),
                                           "hmac:" + hex64 + "0",
                                           "hmac:" + hex64.substr(0, 63) + "A",
                                           "HMAC:" + hex64,
                                           " hmac:" + hex64.substr(1),
                                           "hmac:" + hex64.substr(0, 62) + "\xc3\xab",
                                           "hmac:" + hex64.substr(0, 63) + "\n",
                                           "hmac:" + hex64.substr(0, 63) + "g",
                                           "someone@example.com"};
  int pseudonyms = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    db::Rows r =
        s->exec("SELECT " + db::is_pseudonym_sql("$1::text") + ", $1::text ~ '^hmac:[0-9a-f]{64}$'",
                {values[i]});
    INFO("value #" << i);
    CHECK(r.text(0, 0) == r.text(0, 1));
    pseudonyms += r.text(0, 0) == "t" ? 1 : 0;
  }
  CHECK(pseudonyms == 1);
}

TEST_CASE("purge: hmac computed in the database is RFC 2104 HMAC-SHA256 of the UTF-8 value, even "
          "for a key longer than a block, and the key reaches no server log") {
  test::TestDb t("purge_hmac_sql", 0);
  t.migrate_and_grant();
  auto s = t.admin();
  boundary_orders(*s);
  // Longer than SHA-256's 64-byte block, so RFC 2104 hashes it first.
  std::string key;
  for (int i = 0; i < 100; ++i) {
    key += static_cast<char>('!' + (i * 37) % 90);
  }
  test::write_file(t.dir() / "hmac.key", key + "\n");
  const std::string non_ascii = "zo\xc3\xab.\xc3\xa5ngstr\xc3\xb6m@\xe4\xbe\x8b\xe3\x81\x88.jp";
  const std::string earlier = "hmac:" + std::string(64, 'a');
  s->exec("UPDATE orders SET buyer_email = $1 WHERE amazon_order_id = 'B-30d1h'", {non_ascii});
  s->exec("UPDATE orders SET buyer_email = NULL WHERE amazon_order_id = 'C-30d'");
  s->exec("UPDATE orders SET buyer_email = $1 WHERE amazon_order_id = 'D-cancel-31d'", {earlier});
  // Every statement and its parameters into the server's log, as a strict operator might set it.
  s->exec("ALTER DATABASE " + db::quote_ident(t.name()) + " SET log_statement = 'all'");
  s->exec("ALTER DATABASE " + db::quote_ident(t.name()) + " SET log_min_duration_statement = 0");
  const std::string& log_path = test::cluster().server_log;
  REQUIRE(std::filesystem::exists(log_path));
  auto offset = std::filesystem::file_size(log_path);

  test::RunResult r = t.lethe("purge --as-of '" + k_as_of + "'", roomy_config(t));
  REQUIRE(r.exit == 0);

  CHECK(row(*s, k_order_pii, "B-30d1h") ==
        "hmac:" + crypto::hex(crypto::hmac_sha256(key, non_ascii)) + "|[redacted]");
  CHECK(row(*s, k_order_pii, "C-30d") == "NULL|[redacted]");
  CHECK(row(*s, k_order_pii, "D-cancel-31d") == earlier + "|[redacted]");
  CHECK(
      row(*s, k_order_pii, "H-pending-91d") ==
      "hmac:" + crypto::hex(crypto::hmac_sha256(key, std::string("b-H-pending-91d@example.org"))) +
          "|[redacted]");

  // The log holds lethe's statements, and nothing of the key: neither its text nor the pads.
  std::ifstream in(log_path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(log.find("lethe_hmac_key") != std::string::npos);
  CHECK(log.find("UPDATE \"public\".\"orders\"") != std::string::npos);
  crypto::Digest hashed = crypto::sha256(key);
  std::string ipad;
  std::string opad;
  for (size_t i = 0; i < 64; ++i) {
    unsigned char k = i < hashed.size() ? hashed[i] : 0;
    ipad.push_back(static_cast<char>(k ^ 0x36));
    opad.push_back(static_cast<char>(k ^ 0x5c));
  }
  auto hex_of = [](const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
      out += digits[c >> 4];
      out += digits[c & 15];
    }
    return out;
  };
  CHECK(log.find(key.substr(0, 24)) == std::string::npos);
  CHECK(log.find(hex_of(ipad).substr(0, 32)) == std::string::npos);
  CHECK(log.find(hex_of(opad).substr(0, 32)) == std::string::npos);
  CHECK(log.find(crypto::hex(hashed).substr(0, 32)) == std::string::npos);
  s->exec("ALTER DATABASE " + db::quote_ident(t.name()) + " RESET ALL");
}

TEST_CASE("purge: the one-pass counts equal lethe check's per-table counts, every level, held "
          "apart") {
  test::TestDb t("purge_counts", 600, "2026-06-30");
  t.migrate_and_grant();
  auto cfg = roomy_config(t);
  test::RunResult d = t.lethe("purge --dry-run --json --as-of '" + k_as_of + "'", cfg);
  INFO(d.err);
  REQUIRE(d.exit == 0);
  nlohmann::json plan = nlohmann::json::parse(d.out);

  Context ctx(t.settings(), util::Identity{"test", "test", ""}, "test counts");
  db::Session& s = ctx.ready_db();
  sanitize::Overdue due =
      sanitize::overdue_pii(s, ctx.settings(), db::resolve_instant(s, k_as_of).iso);
  REQUIRE(plan.at("tables").size() == due.tables.size());
  long long held = 0;
  for (size_t i = 0; i < due.tables.size(); ++i) {
    const nlohmann::json& p = plan.at("tables").at(i);
    INFO(due.tables[i].table);
    CHECK(p.at("table") == due.tables[i].table);
    CHECK(p.at("rows").get<long long>() == due.tables[i].overdue);
    CHECK(p.at("held_awaiting_archive").get<long long>() == due.tables[i].held);
    held += due.tables[i].held;
  }
  // The sample has orders of each kind, so the comparison means something.
  CHECK(due.tables[0].overdue > 0);
  CHECK(due.tables[1].overdue > 0);
  CHECK(held > 0);
  CHECK(plan.at("orders_due").get<long long>() ==
        s.exec("SELECT count(*) FROM lethe.pii_state_public_orders r WHERE r.due_at <= "
               "$1::timestamptz AND NOT r.held AND (r.has_pii OR EXISTS (SELECT 1 FROM "
               "lethe.pii_state_public_shipping_addresses c WHERE c.amazon_order_id = "
               "r.amazon_order_id AND c.has_pii))",
               {k_as_of})
            .integer(0, 0));
}
