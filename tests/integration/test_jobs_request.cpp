// C5, C6, C19: Amazon deletion requests against a real TLS PostgreSQL, through the real binary,
// as the least-privilege role `lethe grants` makes for them.
#include "support/cluster.hpp"
#include "worker/audit/ledger.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace lethe;

namespace {

// The sample schema's tables, and how each reaches its order.
const std::vector<std::pair<std::string, std::string>> k_tables = {
    {"orders", "amazon_order_id = ANY($1::text[])"},
    {"shipping_addresses", "amazon_order_id = ANY($1::text[])"},
    {"order_items", "amazon_order_id = ANY($1::text[])"},
    {"buyer_tax_info", "amazon_order_id = ANY($1::text[])"},
    {"buyer_tax_classifications", "tax_info_id IN (SELECT tax_info_id FROM buyer_tax_info WHERE "
                                  "amazon_order_id = ANY($1::text[]))"},
};

std::string array_of(const std::vector<std::string>& ids) {
  std::vector<db::Value> v(ids.begin(), ids.end());
  return db::array_literal(v);
}

// Rows of `ids`' orders in each table.
std::map<std::string, long long> rows_of(db::Session& s, const std::vector<std::string>& ids) {
  std::map<std::string, long long> out;
  for (const auto& [table, where] : k_tables) {
    out["public." + table] =
        s.exec("SELECT count(*) FROM " + table + " WHERE " + where, {array_of(ids)}).integer(0, 0);
  }
  return out;
}

// Copies every table without `ids`' orders into schema `expect`, for comparing afterwards.
void expect_without(db::Session& s, const std::vector<std::string>& ids) {
  s.exec("DROP SCHEMA IF EXISTS expect CASCADE");
  s.exec("CREATE SCHEMA expect");
  for (const auto& [table, where] : k_tables) {
    s.exec("CREATE TABLE expect." + table + " AS SELECT * FROM " + table + " WHERE NOT (" + where +
               ")",
           {array_of(ids)});
  }
}

void require_as_expected(db::Session& s) {
  for (const auto& [table, where] : k_tables) {
    INFO(table);
    CHECK(test::table_digest(s, "public." + table) == test::table_digest(s, "expect." + table));
  }
}

std::vector<std::string> column(db::Session& s, const std::string& sql,
                                const db::Params& params = {}) {
  db::Rows r = s.exec(sql, params);
  std::vector<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(r.text(i, 0));
  }
  return out;
}

// Held orders erased at once, so a scope's business orders go with the rest (the hold's own
// test covers archive-then-erase).
std::string erase_held(const std::string& text) {
  return test::set_key(text, "held_orders", "\"erase\"");
}

std::filesystem::path role_config(const test::TestDb& t, const std::string& role) {
  t.alter_roles("ALTER ROLE " + role + " PASSWORD 'pw-" + role + "'");
  std::filesystem::path p = t.dir() / (role + ".password");
  test::write_file(p, "pw-" + role + "\n", 0600);
  return t.write_config(role + ".toml", erase_held(t.config_text(role, p.string())));
}

nlohmann::json show(const test::TestDb& t, long long id, const std::filesystem::path& cfg,
                    const std::string& extra = {}) {
  test::RunResult r = t.lethe("request show " + std::to_string(id) + " --json " + extra, cfg);
  INFO(r.err);
  REQUIRE(r.exit == 0);
  return nlohmann::json::parse(r.out);
}

// The hmac key as lethe reads it (the file's text without its trailing newline).
std::string hmac_key(const test::TestDb& t) {
  std::string key = util::read_file(t.dir() / "hmac.key");
  while (!key.empty() && key.back() == '\n') {
    key.pop_back();
  }
  return key;
}

std::string everything_written(const test::TestDb& t, db::Session& s) {
  std::string all;
  for (const char* sql :
       {"SELECT string_agg(l::text, E'\\n') FROM lethe.audit_log l",
        "SELECT coalesce(string_agg(r::text, E'\\n'), '') FROM lethe.requests r",
        "SELECT coalesce(string_agg(d::text, E'\\n'), '') FROM lethe.deletion_ledger d",
        "SELECT coalesce(string_agg(j::text, E'\\n'), '') FROM lethe.job_runs j"}) {
    all += s.exec(sql).text(0, 0) + "\n";
  }
  for (const char* f : {"deletion-ledger", "audit-anchor"}) {
    if (std::filesystem::exists(t.dir() / f)) {
      all += util::read_file(t.dir() / f);
    }
  }
  return all;
}

} // namespace

TEST_CASE("request: order, buyer and seller scopes erase exactly their orders in every mapped "
          "table, as lethe_request, keeping no identifier in clear") {
  test::TestDb t("request_scopes", 300);
  t.migrate_and_grant();
  auto s = t.admin();
  auto cfg = role_config(t, "lethe_request");
  std::string key = hmac_key(t);

  // An order; a buyer with two orders in clear and one the purge already pseudonymized; a seller
  // and marketplace. Each of a different seller, so the scopes do not overlap.
  std::vector<std::string> sellers =
      column(*s, "SELECT DISTINCT seller_id FROM orders ORDER BY seller_id");
  REQUIRE(sellers.size() >= 3);
  std::string order =
      column(*s, "SELECT min(amazon_order_id) FROM orders WHERE seller_id = $1", {sellers[0]})[0];
  std::vector<std::string> buyer_orders =
      column(*s, "SELECT amazon_order_id FROM orders WHERE seller_id = $1 ORDER BY 1 LIMIT 3",
             {sellers[1]});
  const std::string email = "jane.roe+lethe@buyer.example";
  s->exec("UPDATE orders SET buyer_email = $1 WHERE amazon_order_id = ANY($2::text[])",
          {email, array_of({buyer_orders[0], buyer_orders[1]})});
  s->exec("UPDATE orders SET buyer_email = $1 WHERE amazon_order_id = $2",
          {"hmac:" + crypto::hex(crypto::hmac_sha256(key, email)), buyer_orders[2]});
  std::string seller = sellers[2];
  std::vector<std::string> seller_orders =
      column(*s,
             "SELECT amazon_order_id FROM orders WHERE seller_id = $1 AND marketplace_id = "
             "'ATVPDKIKX0DER'",
             {seller});
  REQUIRE(!seller_orders.empty());
  std::vector<std::string> pii = t.pii_values();
  pii.push_back(email);

  std::vector<std::string> all_ids = seller_orders;
  all_ids.push_back(order);
  all_ids.insert(all_ids.end(), buyer_orders.begin(), buyer_orders.end());
  std::map<std::string, long long> expected = rows_of(*s, all_ids);
  CHECK(expected["public.order_items"] > 0);
  CHECK(expected["public.buyer_tax_classifications"] > 0);
  expect_without(*s, all_ids);
  // Every statement and its parameters into the server's log, as a strict operator might set it.
  s->exec("ALTER DATABASE " + db::quote_ident(t.name()) + " SET log_statement = 'all'");
  const std::string& log_path = test::cluster().server_log;
  auto log_offset = std::filesystem::file_size(log_path);

  std::string outputs;
  auto add = [&](const std::string& args) {
    test::RunResult r =
        t.lethe("--operator alice request add --action delete --reason 'notice' " + args, cfg);
    INFO(r.err);
    REQUIRE(r.exit == 0);
    outputs += r.out + r.err;
  };
  add("--amazon-ref ORDER-1 --notice-at '2026-11-01 10:00+00' --scope order:" + order);
  test::write_file(t.dir() / "email.txt", email + "\n", 0600);
  add("--amazon-ref BUYER-1 --scope buyer:- < " + (t.dir() / "email.txt").string());
  test::write_file(t.dir() / "seller.scope", "seller:" + seller + "/ATVPDKIKX0DER\n", 0600);
  add("--amazon-ref SELLER-1 --scope-file " + (t.dir() / "seller.scope").string() +
      " --confirm-count " + std::to_string(seller_orders.size()));
  CHECK(show(t, 2, cfg)["orders_resolved"] == 3); // both forms of the buyer
  CHECK(show(t, 3, cfg)["orders_resolved"] == seller_orders.size());
  // Noticed on 1 November: its 72 hours ran out before it was even registered.
  CHECK(show(t, 1, cfg)["state"] == "overdue");
  CHECK(show(t, 1, cfg)["stored_state"] == "received");
  CHECK(show(t, 2, cfg)["state"] == "received");

  test::RunResult run = t.lethe("request run --json", cfg);
  INFO(run.err);
  REQUIRE(run.exit == 0);
  outputs += run.out + run.err;
  require_as_expected(*s);

  // Counts are what was deleted, per table; the role could not vacuum, so the requests wait.
  std::map<std::string, long long> counted;
  for (long long id : {1, 2, 3}) {
    nlohmann::json j = show(t, id, cfg);
    CHECK(j["state"] == "live_erased");
    for (const auto& [table, n] : j["counts"]["rows_erased_by_table"].items()) {
      counted[table] += n.get<long long>();
    }
  }
  for (const auto& [table, n] : expected) {
    INFO(table);
    CHECK(counted[table] == n);
  }
  CHECK(show(t, 2, cfg)["counts"]["orders_erased"] == 3);
  // The resolved order keys (order ids, no PII) stay until each request is complete: a spooled
  // archive holding one is found, and rewritten, by them.
  CHECK(s->exec("SELECT count(*) FROM lethe.request_orders").integer(0, 0) ==
        static_cast<long long>(all_ids.size()));

  // Once the owner vacuumed, the next run completes them (no archive held these orders).
  for (const auto& [table, where] : k_tables) {
    s->exec("VACUUM " + table);
  }
  test::RunResult again = t.lethe("request run", cfg);
  REQUIRE(again.exit == 0);
  outputs += again.out + again.err;
  for (long long id : {1, 2, 3}) {
    CHECK(show(t, id, cfg)["state"] == "complete");
  }
  CHECK(s->exec("SELECT count(*) FROM lethe.request_orders").integer(0, 0) == 0);
  // The notice's clock: ORDER-1 was noticed on 1 November, so 72 hours ran out on the 4th.
  nlohmann::json old = show(t, 1, cfg, "--as-of '2026-11-02 10:00+00'");
  CHECK(old["live_deadline"] == "2026-11-04T10:00:00Z");
  CHECK(old["live_hours_left"] == 48.0);

  // The ledger: one entry per request in the table and the file, HMACs of the identifiers only.
  test::RunResult lv = t.lethe("request ledger verify", cfg);
  INFO(lv.err);
  CHECK(lv.exit == 0);
  audit::LedgerFile file = audit::read_ledger(t.dir() / "deletion-ledger");
  REQUIRE(file.entries.size() == 3);
  nlohmann::json buyer_entry = nlohmann::json::parse(file.entries[1].entry);
  CHECK(buyer_entry["subjects"][0] == crypto::hex(crypto::hmac_sha256(key, email)));
  CHECK(t.lethe("audit verify", cfg).exit == 0);

  // Nothing personal anywhere, and no order or seller id kept once erased.
  std::string written = everything_written(t, *s);
  std::vector<std::string> ids = all_ids;
  ids.push_back(seller);
  test::require_no_pii(outputs + written, pii);
  test::require_no_pii(written, ids);
  std::string log = util::read_file(log_path).substr(log_offset);
  CHECK(log.find("lethe_request_subject") != std::string::npos); // the log has lethe's statements
  test::require_no_pii(log, {email});
}

TEST_CASE("request add: refusals say why and what to do, register nothing and never echo an "
          "identifier") {
  test::TestDb t("request_refusals", 60);
  t.migrate_and_grant();
  auto s = t.admin();
  std::string order = column(*s, "SELECT min(amazon_order_id) FROM orders")[0];
  std::string email = column(*s, "SELECT min(buyer_email) FROM orders")[0];
  auto add = [&](const std::string& args) {
    return t.lethe("--operator alice request add --action delete --reason notice " + args);
  };
  auto requests = [&] { return s->exec("SELECT count(*) FROM lethe.requests").integer(0, 0); };

  // A buyer's email on the command line is refused without repeating it.
  test::RunResult r = add("--amazon-ref R1 --scope buyer:" + email);
  CHECK(r.exit == 64);
  CHECK(r.err.find("standard input") != std::string::npos);
  test::require_no_pii(r.out + r.err, {email});
  // A malformed id names its position, not its value.
  r = add("--amazon-ref R1 --scope order:" + order + ",123-45-6789");
  CHECK(r.exit == 64);
  CHECK(r.err.find("order id 2 is not an Amazon order id") != std::string::npos);
  CHECK(r.err.find("123-45-6789") == std::string::npos);
  test::write_file(t.dir() / "bad.txt", "not-an-email\n", 0600);
  r = add("--amazon-ref R1 --scope buyer:- < " + (t.dir() / "bad.txt").string());
  CHECK(r.exit == 64);
  CHECK(r.err.find("not an email address") != std::string::npos);
  CHECK(r.err.find("not-an-email") == std::string::npos);
  // A scope file others can read is refused.
  test::write_file(t.dir() / "open.scope", "buyer:" + email + "\n", 0644);
  r = add("--amazon-ref R1 --scope-file " + (t.dir() / "open.scope").string());
  CHECK(r.exit == 77);
  test::require_no_pii(r.out + r.err, {email});
  // Who and why are required; a return needs the key it goes to, and a real one.
  CHECK(t.lethe("request add --action delete --amazon-ref R1 --scope order:" + order).exit == 64);
  auto ret = [&](const std::string& args) {
    return t.lethe("--operator alice request add --action return --reason notice " + args);
  };
  r = ret("--amazon-ref R1 --scope order:" + order);
  CHECK(r.exit == 64);
  CHECK(r.err.find("needs --return-to") != std::string::npos);
  test::write_file(t.dir() / "not-a-key.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n", 0644);
  r = ret("--amazon-ref R1 --scope order:" + order + " --return-to " +
          (t.dir() / "not-a-key.pem").string());
  CHECK(r.exit != 0);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(add("--amazon-ref R1 --scope order:" + order + " --return-to x.pem").exit == 64);
  CHECK(requests() == 0);

  // Nothing found: refused with the count and how to confirm it; confirmed, it registers.
  r = add("--amazon-ref R2 --scope order:999-9999999-9999999");
  CHECK(r.exit == 65);
  CHECK(r.err.find("resolves to no order") != std::string::npos);
  CHECK(r.err.find("--confirm-count 0") != std::string::npos);
  CHECK(requests() == 0);
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE kind = 'refusal' AND exit_reason = "
                "'scope_count'")
            .integer(0, 0) == 1);
  REQUIRE(add("--amazon-ref R2 --scope order:999-9999999-9999999 --confirm-count 0").exit == 0);
  // Above requests.max_orders: refused unless the exact count is confirmed.
  auto small = t.write_config("small.toml", test::set_key(t.config_text(), "max_orders", "2"));
  std::string three = column(*s, "SELECT string_agg(amazon_order_id, ',') FROM (SELECT "
                                 "amazon_order_id FROM orders ORDER BY 1 LIMIT 3) o")[0];
  r = t.lethe("--operator alice request add --action delete --reason notice --amazon-ref R3 "
              "--scope order:" +
                  three,
              small);
  CHECK(r.exit == 65);
  CHECK(r.err.find("resolves to 3 orders, above requests.max_orders = 2") != std::string::npos);
  CHECK(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref R3 "
                "--confirm-count 4 --scope order:" +
                    three,
                small)
            .exit == 65);
  REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref R3 "
                  "--confirm-count 3 --scope order:" +
                      three,
                  small)
              .exit == 0);
  // Ids of refused requests were never committed; find each by its reference.
  auto id_of = [&](const std::string& ref) {
    return column(*s,
                  "SELECT request_id::text FROM lethe.requests WHERE amazon_ref = $1 AND state "
                  "<> 'cancelled'",
                  {ref})[0];
  };
  std::string r2 = id_of("R2");
  std::string r3 = id_of("R3");
  // One request per Amazon reference, until it is cancelled (only before it ran).
  r = add("--amazon-ref R3 --scope order:" + order);
  CHECK(r.exit == 65);
  CHECK(r.err.find("request cancel") != std::string::npos);
  CHECK(t.lethe("request cancel " + r3 + " --reason typo").exit == 64); // who?
  REQUIRE(t.lethe("--operator bob request cancel " + r3 + " --reason 'wrong scope'").exit == 0);
  REQUIRE(add("--amazon-ref R3 --scope order:" + order).exit == 0);
  CHECK(s->exec("SELECT count(*) FROM lethe.request_orders WHERE request_id = $1", {r3})
            .integer(0, 0) == 0);
  REQUIRE(t.lethe("request run").exit == 0);
  r = t.lethe("--operator bob request cancel " + id_of("R3") + " --reason late");
  CHECK(r.exit == 65);
  CHECK(r.err.find("only a request that has not run can be cancelled") != std::string::npos);
  // The request that resolved to nothing is erased at once: the ledger says so, with 0 orders.
  nlohmann::json none = show(t, std::stoll(r2), t.config());
  CHECK(none["counts"]["orders_erased"] == 0);
  CHECK(none["stored_state"] == "complete");
  CHECK(s->exec("SELECT actor FROM lethe.audit_log WHERE exit_reason = 'cancelled'").text(0, 0) ==
        "bob");
}

TEST_CASE("request run: killed at any step, the next run finishes the request and counts each "
          "row once") {
  test::TestDb t("request_kills", 150);
  t.migrate_and_grant();
  auto s = t.admin();
  const std::vector<std::string> points = {"request:executing", "sanitize:batch_committed",
                                           "request:erase_recorded", "request:ledger_written"};
  std::vector<std::string> sellers =
      column(*s, "SELECT DISTINCT seller_id FROM orders ORDER BY seller_id");
  REQUIRE(sellers.size() >= 2);
  // Small batches, so a kill after the first leaves work for the next run.
  auto cfg = t.write_config("small-batches.toml",
                            erase_held(test::set_key(t.config_text(), "batch_size", "5")));
  for (size_t i = 0; i < points.size(); ++i) {
    INFO(points[i]);
    // Each round erases a few orders of the first seller, by order scope.
    std::vector<std::string> ids =
        column(*s, "SELECT amazon_order_id FROM orders WHERE seller_id = $1 ORDER BY 1 LIMIT 8",
               {sellers[0]});
    REQUIRE(ids.size() == 8);
    std::string list;
    for (const std::string& id : ids) {
      list += (list.empty() ? "" : ",") + id;
    }
    std::map<std::string, long long> expected = rows_of(*s, ids);
    REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref "
                    "K" +
                        std::to_string(i) + " --scope order:" + list,
                    cfg)
                .exit == 0);
    long long id = static_cast<long long>(i) + 1;
    test::RunResult crash =
        test::run_shell("LETHE_CRASH_AT=" + points[i] + " " + std::string(LETHE_BIN) +
                            " --config " + cfg.string() + " request run",
                        t.dir());
    CHECK(crash.exit == 99);
    test::RunResult rerun = t.lethe("request run", cfg);
    INFO(crash.out + crash.err + rerun.out + rerun.err);
    REQUIRE(rerun.exit == 0);
    nlohmann::json j = show(t, id, cfg);
    CHECK((j["stored_state"] == "live_erased" || j["stored_state"] == "complete"));
    CHECK(j["counts"]["orders_erased"] == 8);
    for (const auto& [table, n] : expected) {
      INFO(table);
      CHECK(j["counts"]["rows_erased_by_table"].value(table, 0LL) == n);
    }
    CHECK(rows_of(*s, ids)["public.orders"] == 0);
    test::RunResult lv = t.lethe("request ledger verify", cfg);
    INFO(lv.err);
    CHECK(lv.exit == 0);
    CHECK(audit::read_ledger(t.dir() / "deletion-ledger").entries.size() == i + 1);
    CHECK(t.lethe("audit verify", cfg).exit == 0);
  }
}

TEST_CASE("check: a request past its deadline or within requests.warn_hours of it fails the "
          "probe, as lethe_monitor") {
  test::TestDb t("request_check", 0);
  t.migrate_and_grant();
  t.approve(); // `lethe check` wants an approved schema
  auto s = t.admin();
  std::string now = s->exec("SELECT now()::text").text(0, 0);
  test::insert_order(*s, now, {"111-0000000-0000001", "Shipped", "1 day", "1 day"});
  auto monitor = role_config(t, "lethe_monitor");
  REQUIRE(t.lethe("check", monitor).exit == 0);
  // Noticed 61 hours ago: 11 hours left, inside the 12-hour warning.
  REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref "
                  "C1 --notice-at \"$(date -u -d '61 hours ago' '+%F %T+00')\" --scope "
                  "order:111-0000000-0000001")
              .exit == 0);
  test::RunResult r = t.lethe("check --json", monitor);
  INFO(r.err);
  CHECK(r.exit == 1);
  nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j["overdue"] == 0);
  CHECK(j["requests_open"] == 1);
  REQUIRE(j["requests_needing_attention"].size() == 1);
  CHECK(j["requests_needing_attention"][0]["deadline"] == "live data");
  CHECK(j["requests_needing_attention"][0]["hours_left"].get<double>() < 12);
  CHECK(j["requests_needing_attention"][0]["overdue"] == false);
  // Text output names the request and what to do; later it is overdue.
  r = t.lethe("check --as-of \"$(date -u -d '+12 hours' '+%F %T+00')\"", monitor);
  CHECK(r.exit == 1);
  CHECK(r.out.find("request 1 (C1): live data due") != std::string::npos);
  CHECK(r.out.find("OVERDUE by") != std::string::npos);
  CHECK(r.out.find("lethe request run") != std::string::npos);
  // Erased by the request role, which may not VACUUM: with less than a day to the 72 hours, the
  // dead row versions left are an alarm until the owner vacuums.
  REQUIRE(t.lethe("request run", role_config(t, "lethe_request")).exit == 0);
  r = t.lethe("check", monitor);
  CHECK(r.exit == 1);
  INFO(r.out);
  size_t at = r.out.find("dead row versions (VACUUM ");
  REQUIRE(at != std::string::npos);
  CHECK(r.out.substr(at, r.out.find('\n', at) - at).find("public.orders") != std::string::npos);
  for (const char* table : {"orders", "shipping_addresses", "order_items"}) {
    s->exec(std::string("VACUUM ") + table);
  }
  // Then the request's next deadline is 90 days out: the probe passes.
  r = t.lethe("check", monitor);
  INFO(r.out);
  CHECK(r.exit == 0);
}

namespace {

// libpq's connection string for database `dbname` of the test cluster, as its admin.
std::string admin_conninfo(const std::string& dbname) {
  const test::ClusterInfo& c = test::cluster();
  return "host=" + c.host + " port=" + std::to_string(c.port) + " user=" + c.admin +
         " dbname=" + dbname + " sslmode=verify-full sslrootcert=" + c.ca;
}

// Real pg_dump (custom format) of `from`, restored by real pg_restore into a new `to`.
void dump_and_restore(const test::TestDb& t, const std::string& from, const std::string& to,
                      const std::filesystem::path& file) {
  std::string pw = "PGPASSWORD=\"$(cat " + test::cluster().admin_password_file + ")\" ";
  test::RunResult d = test::run_shell(
      pw + "pg_dump -Fc -f " + file.string() + " '" + admin_conninfo(from) + "'", t.dir());
  INFO(d.err);
  REQUIRE(d.exit == 0);
  t.admin()->exec("DROP DATABASE IF EXISTS " + to);
  t.admin()->exec("CREATE DATABASE " + to);
  test::RunResult r = test::run_shell(
      pw + "pg_restore --exit-on-error -d '" + admin_conninfo(to) + "' " + file.string(), t.dir());
  INFO(r.err);
  REQUIRE(r.exit == 0);
}

} // namespace

TEST_CASE("request replay: a database restored from before the erase gets its subjects erased "
          "again and its ledger back, and a second replay finds nothing") {
  test::TestDb t("request_replay", 200);
  t.migrate_and_grant();
  auto s = t.admin();
  std::string key = hmac_key(t);
  std::vector<std::string> sellers =
      column(*s, "SELECT DISTINCT seller_id FROM orders ORDER BY seller_id");
  std::vector<std::string> buyer_orders =
      column(*s, "SELECT amazon_order_id FROM orders WHERE seller_id = $1 ORDER BY 1 LIMIT 2",
             {sellers[0]});
  const std::string email = "replayed.buyer@buyer.example";
  s->exec("UPDATE orders SET buyer_email = $1 WHERE amazon_order_id = $2",
          {email, buyer_orders[0]});
  s->exec("UPDATE orders SET buyer_email = $1 WHERE amazon_order_id = $2",
          {"hmac:" + crypto::hex(crypto::hmac_sha256(key, email)), buyer_orders[1]});
  std::string order =
      column(*s, "SELECT max(amazon_order_id) FROM orders WHERE seller_id = $1", {sellers[0]})[0];
  std::vector<std::string> seller_orders =
      column(*s, "SELECT amazon_order_id FROM orders WHERE seller_id = $1", {sellers[1]});
  std::vector<std::string> ids = seller_orders;
  ids.insert(ids.end(), {buyer_orders[0], buyer_orders[1], order});

  // The backup is taken before any request was registered.
  std::string restored = t.name() + "_restored";
  dump_and_restore(t, t.name(), restored, t.dir() / "before.dump");

  auto cfg = t.write_config("erase.toml", erase_held(t.config_text()));
  auto add = [&](const std::string& args) {
    REQUIRE(
        t.lethe("--operator alice request add --action delete --reason notice " + args, cfg).exit ==
        0);
  };
  test::write_file(t.dir() / "buyer.scope", "buyer:" + email + "\n", 0600);
  add("--amazon-ref RB --scope-file " + (t.dir() / "buyer.scope").string());
  add("--amazon-ref RO --scope order:" + order);
  add("--amazon-ref RS --scope seller:" + sellers[1] + " --confirm-count " +
      std::to_string(seller_orders.size()));
  REQUIRE(t.lethe("request run", cfg).exit == 0);
  CHECK(rows_of(*s, ids)["public.orders"] == 0);

  auto rcfg = t.write_config("restored.toml",
                             test::set_key(t.config_text(), "dsn",
                                           "\"host=" + test::cluster().host +
                                               " port=" + std::to_string(test::cluster().port) +
                                               " dbname=" + restored +
                                               " user=" + test::cluster().admin + "\""));
  // Until the ledger is replayed, request runs on the restored database refuse and say why.
  test::RunResult stale = t.lethe("request run", rcfg);
  CHECK(stale.exit == 65);
  CHECK(stale.err.find("the database was restored from before them") != std::string::npos);
  CHECK(stale.err.find("lethe request replay") != std::string::npos);
  // The restored database holds every erased order again.
  auto r = test::admin_session(restored);
  std::map<std::string, long long> before = rows_of(*r, ids);
  CHECK(before["public.orders"] == static_cast<long long>(ids.size()));
  long long others =
      r->exec("SELECT count(*) FROM orders").integer(0, 0) - static_cast<long long>(ids.size());
  test::RunResult rp = t.lethe("request replay --json --into-db " + restored, cfg);
  INFO(rp.err);
  REQUIRE(rp.exit == 0);
  nlohmann::json j = nlohmann::json::parse(rp.out);
  CHECK(j["ledger_entries_checked"] == 3);
  CHECK(j["orders_found_again"] == ids.size());
  CHECK(j["ledger_entries_restored"] == 3);
  long long expected_rows = 0;
  for (const auto& [table, n] : before) {
    expected_rows += n;
  }
  CHECK(j["rows_erased"] == expected_rows);
  std::map<std::string, long long> after = rows_of(*r, ids);
  for (const auto& [table, n] : after) {
    INFO(table);
    CHECK(n == 0);
  }
  CHECK(r->exec("SELECT count(*) FROM orders").integer(0, 0) == others);
  // The restored database's ledger and requests agree with the file again.
  test::RunResult lv = t.lethe("request ledger verify", rcfg);
  INFO(lv.out + lv.err);
  CHECK(lv.exit == 0);
  CHECK(r->exec("SELECT count(*) FROM lethe.requests WHERE state = 'live_erased'").integer(0, 0) ==
        3);

  // Again: nothing is found, nothing changes.
  rp = t.lethe("request replay --json --into-db " + restored, cfg);
  REQUIRE(rp.exit == 0);
  j = nlohmann::json::parse(rp.out);
  CHECK(j["orders_found_again"] == 0);
  CHECK(j["ledger_entries_restored"] == 0);
  // Into the live database, where the erase happened, it finds nothing either.
  rp = t.lethe("request replay --json", cfg);
  REQUIRE(rp.exit == 0);
  CHECK(nlohmann::json::parse(rp.out)["orders_found_again"] == 0);
  CHECK(t.lethe("audit verify").exit == 0);
  test::require_no_pii(rp.out + rp.err, {email});
  r.reset();
  t.admin()->exec("DROP DATABASE " + restored);
}

TEST_CASE("request: a held order is archived before its live rows go (archive-then-erase), or "
          "erased at once (erase), and the request completes once the archive is cold") {
  test::TestDb t("request_held", 0);
  t.migrate_and_grant();
  t.make_archive_keys();
  auto s = t.admin();
  std::string now = s->exec("SELECT now()::text").text(0, 0);
  // Shipped two days ago: not due for the purge, so only the request takes them.
  test::insert_order(*s, now, {"111-0000000-0000001", "Shipped", "2 days", "2 days", true});
  test::insert_order(*s, now, {"111-0000000-0000002", "Shipped", "2 days", "2 days"});
  test::insert_order(*s, now, {"111-0000000-0000003", "Shipped", "2 days", "2 days", true});
  auto add = [&](const std::string& ref, const std::string& scope,
                 const std::filesystem::path& cfg) {
    REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref " +
                        ref + " --scope order:" + scope,
                    cfg)
                .exit == 0);
  };
  add("H1", "111-0000000-0000001,111-0000000-0000002", t.config());
  std::vector<std::string> pii = t.pii_values();
  test::RunResult early = t.lethe("request certify 1 --out " + (t.dir() / "early.html").string());
  CHECK(early.exit == 65);
  CHECK(early.err.find("no erase to certify yet") != std::string::npos);

  // The plain order goes at once; the held one waits for its archive, and says so.
  test::RunResult r = t.lethe("request run --json");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  nlohmann::json steps = nlohmann::json::parse(r.out);
  CHECK(steps[0]["step"] == "orders_remaining");
  CHECK(steps[0]["detail"].get<std::string>().find("1 held orders wait for their archive") == 0);
  CHECK(rows_of(*s, {"111-0000000-0000002"})["public.orders"] == 0);
  CHECK(rows_of(*s, {"111-0000000-0000001"})["public.orders"] == 1);
  CHECK(show(t, 1, t.config())["stored_state"] == "executing");

  // The archive job archives it though it is not due; the next request run erases it.
  r = t.lethe("archive run");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  std::string archive = s->exec("SELECT archive_id FROM lethe.archived_orders WHERE order_key = "
                                "'111-0000000-0000001'")
                            .text(0, 0);
  r = t.lethe("request run");
  REQUIRE(r.exit == 0);
  CHECK(rows_of(*s, {"111-0000000-0000001"})["public.orders"] == 0);
  nlohmann::json j = show(t, 1, t.config());
  CHECK(j["stored_state"] == "live_erased");
  CHECK(j["counts"]["orders_erased"] == 2);
  REQUIRE(j["copies"].size() == 1);
  CHECK(j["copies"][0]["id"] == archive);
  CHECK(j["copies"][0]["state"] == "spooled");
  // Spooled is online: the request waits until the archive is in cold storage.
  r = t.lethe("request run --json");
  CHECK(nlohmann::json::parse(r.out)[0]["step"] == "waiting");
  REQUIRE(t.lethe("archive mark-cold " + archive).exit == 0);
  REQUIRE(t.lethe("request run").exit == 0);
  j = show(t, 1, t.config());
  CHECK(j["stored_state"] == "complete");
  CHECK(j["copies"][0]["state"] == "cold");
  CHECK_FALSE(j["copies"][0]["retention_until"].get<std::string>().empty());

  // The certificate: what went, the archive kept offline, and the records that prove it.
  REQUIRE(t.lethe("request certify 1 --out " + (t.dir() / "cert.txt").string()).exit == 0);
  REQUIRE(t.lethe("request certify 1 --out " + (t.dir() / "cert.html").string()).exit == 0);
  std::string text = util::read_file(t.dir() / "cert.txt");
  std::string html = util::read_file(t.dir() / "cert.html");
  CHECK(text.find("Complete: the live data was erased and no copy is left online.") !=
        std::string::npos);
  CHECK(text.find("rows deleted from public.orders: 2") != std::string::npos);
  CHECK(text.find("archive " + archive + ": offline in cold storage") != std::string::npos);
  db::Rows ev = s->exec("SELECT seq, hash FROM lethe.audit_log WHERE details::jsonb ->> "
                        "'request_id' = '1' ORDER BY seq");
  REQUIRE(ev.size() >= 4); // registered, the two runs, complete
  for (size_t i = 0; i < ev.size(); ++i) {
    std::string line = "audit record " + ev.text(i, 0) + ": ";
    INFO(line);
    size_t at = text.find(line);
    REQUIRE(at != std::string::npos);
    CHECK(text.substr(at, text.find('\n', at) - at).find("sha256 " + ev.text(i, 1)) !=
          std::string::npos);
    CHECK(html.find(ev.text(i, 1)) != std::string::npos);
  }
  std::string ledger_hash =
      s->exec("SELECT hash FROM lethe.deletion_ledger WHERE request_id = 1").text(0, 0);
  CHECK(text.find("deletion ledger entry 1: ") != std::string::npos);
  CHECK(text.find("sha256 " + ledger_hash) != std::string::npos);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  // In a real browser (headless Chromium, network off): not blank, nothing fetched from
  // elsewhere, and the text as the browser parsed it carries the numbers and the records.
  std::string expect = " 'Certificate of deletion: Amazon reference H1' 'orders erased 2' "
                       "'rows deleted from public.orders 2' 'deletion ledger entry 1' " +
                       std::string("'") + ledger_hash + "'";
  for (size_t i = 0; i < ev.size(); ++i) {
    expect += " 'audit record " + ev.text(i, 0) + "' '" + ev.text(i, 1) + "'";
  }
  test::RunResult shown = test::run_shell(
      "node " LETHE_SOURCE_DIR "/tests/browser/render-check.mjs " +
          (t.dir() / "cert.html").string() + " " + (t.dir() / "cert.png").string() + expect,
      t.dir());
  INFO(shown.out + shown.err);
  CHECK(shown.exit == 0);
  CHECK(shown.out.find("\"missing\":[]") != std::string::npos);
  test::require_no_pii(text + html, pii);
  test::require_no_pii(text + html, {"111-0000000-0000001", "111-0000000-0000002"});
  CHECK(t.lethe("audit verify").exit == 0);

  // With held_orders = "erase" the held order goes at once, unarchived.
  auto erase =
      t.write_config("erase.toml", test::set_key(t.config_text(), "held_orders", "\"erase\""));
  add("H2", "111-0000000-0000003", erase);
  REQUIRE(t.lethe("request run", erase).exit == 0);
  CHECK(rows_of(*s, {"111-0000000-0000003"})["public.orders"] == 0);
  CHECK(s->exec("SELECT count(*) FROM lethe.archived_orders WHERE order_key = "
                "'111-0000000-0000003'")
            .integer(0, 0) == 0);

  // Any other value is a configuration error at its place.
  auto bad = t.write_config("bad.toml", test::set_key(t.config_text(), "held_orders", "\"keep\""));
  r = t.lethe("config check --offline", bad);
  CHECK(r.exit == 78);
  CHECK(r.err.find("requests.held_orders must be one of: archive-then-erase,erase") !=
        std::string::npos);
}

// Files in the archive spool (archives and any pending write).
size_t spool_files(const test::TestDb& t) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(t.dir() / "archive-spool")) {
    n += e.is_regular_file() ? 1 : 0;
  }
  return n;
}

TEST_CASE("archive rewrite: a spooled archive is written anew without a request's orders, the "
          "old one destroyed, a crash finished by the rerun, and the request completes") {
  test::TestDb t("request_rewrite", 0);
  t.migrate_and_grant();
  t.make_archive_keys();
  auto s = t.admin();
  std::string now = s->exec("SELECT now()::text").text(0, 0);
  // Two held (business) orders, each with tax rows two levels down: one the request names (not
  // due), one due for the purge. The archive job archives both into one archive.
  // A third, held and not due, is a second request's: the archive holds all three.
  const std::string gone = "111-0000000-0000001";
  const std::string kept = "111-0000000-0000004";
  const std::string other = "111-0000000-0000005";
  test::insert_order(*s, now, {gone, "Shipped", "2 days", "2 days", true});
  test::insert_order(*s, now, {kept, "Shipped", "40 days", "40 days", true});
  test::insert_order(*s, now, {other, "Shipped", "2 days", "2 days", true});
  std::vector<std::string> pii = t.pii_values();
  const std::vector<std::pair<std::string, std::string>> archived = {
      {"orders", "amazon_order_id = ANY($1::text[])"},
      {"shipping_addresses", "amazon_order_id = ANY($1::text[])"},
      {"buyer_tax_info", "amazon_order_id = ANY($1::text[])"},
      {"buyer_tax_classifications", "tax_info_id IN (SELECT tax_info_id FROM buyer_tax_info WHERE "
                                    "amazon_order_id = ANY($1::text[]))"}};
  s->exec("CREATE SCHEMA expect");
  for (const auto& [table, where] : archived) {
    s->exec("CREATE TABLE expect." + table + " AS SELECT * FROM " + table + " WHERE " + where,
            {array_of({kept, other})});
  }
  REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref "
                  "RW1 --scope order:" +
                  gone)
              .exit == 0);
  REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref "
                  "RW2 --scope order:" +
                  other)
              .exit == 0);
  REQUIRE(t.lethe("request run").exit == 0); // the held orders wait for their archive
  test::RunResult r = t.lethe("archive run");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  std::string old = s->exec("SELECT archive_id FROM lethe.archives").text(0, 0);
  CHECK(s->exec("SELECT orders FROM lethe.archives").integer(0, 0) == 3);
  REQUIRE(t.lethe("request run").exit == 0);
  REQUIRE(show(t, 1, t.config())["stored_state"] == "live_erased");
  REQUIRE(show(t, 2, t.config())["stored_state"] == "live_erased");
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();
  std::string cmd = "archive rewrite " + old + " --exclude-request 1" + key;
  std::string outputs;

  // Refusals change nothing and say why.
  r = t.lethe(cmd + " --reason notice");
  CHECK(r.exit == 64);
  CHECK(r.err.find("archive rewrite needs --operator NAME") != std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref "
                  "RW3 --scope order:" +
                  kept)
              .exit == 0);
  r = t.lethe("--operator alice archive rewrite " + old + " --exclude-request 3 --reason n" + key);
  CHECK(r.exit == 65);
  CHECK(r.err.find("request 3 is received") != std::string::npos);
  CHECK(r.err.find("run `lethe request run` first") != std::string::npos);
  REQUIRE(t.lethe("--operator alice request cancel 3 --reason mistake").exit == 0);
  outputs += r.out + r.err;

  // The database's own guard: a rewrite destroys a spooled archive before its retention ends
  // only for a recorded replacement that keeps the hold (a bare record, then rolled back).
  auto forged_destroy = [&](const std::string& id, const std::string& replaced_by) {
    try {
      s->transact([&](db::Transaction& tx) {
        tx.exec("INSERT INTO lethe.audit_log (seq, recorded_at, kind, job, actor, os_user, unit, "
                "outcome, exit_reason, counts, details, prev_hash, hash) SELECT max(seq) + 1, "
                "now(), 'manual', 'archive rewrite', 'test', 'test', 'test', 'done', "
                "'destroyed', '{}', json_build_object('archive_id', $1::text, 'from', "
                "'spooled', 'replaced_by', $2::text)::text, 'x', md5(random()::text) FROM "
                "lethe.audit_log",
                {id, replaced_by});
        tx.exec("SELECT lethe.archive_set_state($1, 'destroyed', (SELECT max(seq) FROM "
                "lethe.audit_log))",
                {id});
        throw std::runtime_error("accepted");
      });
    } catch (const db::DbError& e) {
      return e.sqlstate();
    } catch (const std::runtime_error&) {
      return std::string("accepted");
    }
    return std::string("not reached");
  };
  CHECK(forged_destroy(old, "a-none") == "42501");
  CHECK(forged_destroy(old, old) == "42501");

  // A crash once the new archive is recorded: the rerun destroys the old one, writes nothing.
  test::RunResult crash = test::run_shell(
      "LETHE_CRASH_AT=rewrite:recorded " + std::string(LETHE_BIN) + " --config " +
          t.config().string() + " --operator alice " + cmd + " --reason 'notice RW1'",
      t.dir());
  CHECK(crash.exit == 99);
  CHECK(s->exec("SELECT count(*) FROM lethe.archives WHERE state = 'spooled'").integer(0, 0) == 2);
  r = t.lethe("--operator alice " + cmd + " --reason 'notice RW1'");
  INFO(crash.err + r.err);
  REQUIRE(r.exit == 0);
  CHECK(r.out.find("by an earlier run; the old one is destroyed now") != std::string::npos);
  outputs += crash.out + crash.err + r.out + r.err;
  db::Rows a = s->exec("SELECT archive_id, state, orders, retention_until::text, destroyed_by "
                       "FROM lethe.archives ORDER BY created_at, archive_id");
  REQUIRE(a.size() == 2);
  std::string fresh = a.text(0, 0) == old ? a.text(1, 0) : a.text(0, 0);
  db::Rows o = s->exec("SELECT state, destroyed_by, retention_until::text FROM lethe.archives "
                       "WHERE archive_id = $1",
                       {old});
  db::Rows n = s->exec("SELECT state, orders, retention_until::text FROM lethe.archives WHERE "
                       "archive_id = $1",
                       {fresh});
  CHECK(o.text(0, 0) == "destroyed");
  CHECK(o.text(0, 1) == "alice");
  CHECK(n.text(0, 0) == "spooled");
  CHECK(n.integer(0, 1) == 2);
  CHECK(n.text(0, 2) == o.text(0, 2)); // the hold is kept
  CHECK_FALSE(util::exists(t.dir() / "archive-spool" / (old + ".lethe-archive")));
  CHECK(spool_files(t) == 1);
  CHECK(column(*s, "SELECT order_key FROM lethe.archived_orders WHERE archive_id = $1 ORDER BY 1",
               {fresh}) == std::vector<std::string>{kept, other});
  // The new archive is no replacement of the old one's replacement.
  CHECK(forged_destroy(fresh, old) == "42501");
  // Nor is an empty archive forged with a rewrite's evidence (what a job role could write):
  // the request does not account for the orders it lacks.
  for (const std::string request : {"1", "2"}) {
    std::string forged;
    try {
      s->transact([&](db::Transaction& tx) {
        tx.exec("INSERT INTO lethe.archives (archive_id, path, size_bytes, sha256, as_of, "
                "retention_until, pii_map_digest, recipients, row_counts, orders) VALUES "
                "('a-forged', '/x', 1, repeat('a', 64), now(), '2099-01-01', 'x', '[]', '{}', 0)");
        auto record = [&](const std::string& reason, const std::string& details,
                          const std::string& counts) {
          tx.exec("INSERT INTO lethe.audit_log (seq, recorded_at, kind, job, actor, os_user, "
                  "unit, outcome, exit_reason, counts, details, prev_hash, hash) SELECT max(seq) "
                  "+ 1, now(), 'manual', 'archive rewrite', 'test', 'test', 'test', 'done', $1, "
                  "$3, $2, 'x', md5(random()::text) FROM lethe.audit_log",
                  {reason, details, counts});
        };
        record("archive_written",
               "{\"archive_id\": \"a-forged\", \"sha256\": \"" + std::string(64, 'a') +
                   "\", \"rewritten_from\": \"" + fresh + "\", \"excluded_request\": \"" + request +
                   "\"}",
               "{\"bytes\": 1, \"orders\": 0}");
        tx.exec("SELECT lethe.archive_orders('a-forged', (SELECT max(seq) FROM lethe.audit_log), "
                "'{}'::text[])");
        record("destroyed",
               "{\"archive_id\": \"" + fresh +
                   "\", \"from\": \"spooled\", \"replaced_by\": \"a-forged\", "
                   "\"excluded_request\": \"" +
                   request + "\"}",
               "{}");
        tx.exec("SELECT lethe.archive_set_state($1, 'destroyed', (SELECT max(seq) FROM "
                "lethe.audit_log))",
                {fresh});
        throw std::runtime_error("accepted");
      });
    } catch (const db::DbError& e) {
      forged = e.sqlstate();
    } catch (const std::runtime_error&) {
      forged = "accepted";
    }
    INFO(request);
    CHECK(forged == "42501");
  }
  // Again: nothing to do.
  r = t.lethe("--operator alice " + cmd + " --reason 'notice RW1'");
  CHECK(r.exit == 0);
  CHECK(r.out.find("was rewritten as " + fresh + " already") != std::string::npos);

  // The new archive holds exactly the kept order's rows, every level down.
  r = t.lethe("archive restore " + fresh + key + " --reason check --into-db rewritten");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  for (const auto& [table, where] : archived) {
    INFO(table);
    CHECK(test::table_digest(*s, "rewritten.public_" + table) ==
          test::table_digest(*s, "expect." + table));
    CHECK(s->exec("SELECT count(*) FROM rewritten.public_" + table).integer(0, 0) > 0);
  }
  CHECK(t.lethe("archive verify --read-data" + key).exit == 0);
  CHECK(t.lethe("audit verify").exit == 0);

  // The new archive holds none of the request's orders: a rewrite of it is refused, nothing made.
  r = t.lethe("--operator alice archive rewrite " + fresh + " --exclude-request 1 --reason n" +
              key);
  CHECK(r.exit == 65);
  CHECK(r.err.find("the catalog lists no order of request 1 in archive " + fresh +
                   "; nothing was rewritten") != std::string::npos);
  CHECK(spool_files(t) == 1);
  CHECK(s->exec("SELECT count(*) FROM lethe.archives").integer(0, 0) == 2);
  outputs += r.out + r.err;

  // No spooled archive holds request 1's orders now: the next run completes it. Request 2's
  // order is in the new archive, so request 2 waits for it, though the archive its erase
  // recorded is destroyed.
  r = t.lethe("request run --json");
  REQUIRE(r.exit == 0);
  nlohmann::json j = show(t, 1, t.config());
  CHECK(j["stored_state"] == "complete");
  REQUIRE(j["copies"].size() == 1);
  CHECK(j["copies"][0]["state"] == "destroyed");
  nlohmann::json second = show(t, 2, t.config());
  CHECK(second["stored_state"] == "live_erased");
  CHECK(r.out.find("archive " + fresh + " (spooled)") != std::string::npos);
  // ... and names it among its copies, so `request show` and the certificate do.
  REQUIRE(second["copies"].size() == 2);
  CHECK(second["copies"][1]["id"] == fresh);
  CHECK(second["copies"][1]["state"] == "spooled");
  CHECK(second["copies"][1]["added_after_erase"] == true);
  // Rewritten again without request 2's order: it completes too.
  r = t.lethe("--operator alice archive rewrite " + fresh + " --exclude-request 2 --reason n" +
              key);
  INFO(r.err);
  REQUIRE(r.exit == 0);
  outputs += r.out + r.err;
  REQUIRE(t.lethe("request run").exit == 0);
  CHECK(show(t, 2, t.config())["stored_state"] == "complete");
  REQUIRE(t.lethe("request certify 2 --out " + (t.dir() / "cert2.txt").string()).exit == 0);
  std::string cert2 = util::read_file(t.dir() / "cert2.txt");
  CHECK(cert2.find("archive " + old + ": destroyed") != std::string::npos);
  CHECK(cert2.find("archive " + fresh + ": destroyed") != std::string::npos);
  outputs += cert2;
  CHECK(column(*s, "SELECT o.order_key FROM lethe.archived_orders o JOIN lethe.archives a ON "
                   "a.archive_id = o.archive_id WHERE a.state = 'spooled'") ==
        std::vector<std::string>{kept});
  CHECK(s->exec("SELECT count(*) FROM lethe.request_orders").integer(0, 0) == 0);

  // The evidence: the new archive's record names the old one and the request; the old one's
  // destruction names its replacement; no value anywhere.
  db::Rows ev = s->exec("SELECT details FROM lethe.audit_log WHERE job = 'archive rewrite' AND "
                        "exit_reason IN ('archive_written', 'destroyed') ORDER BY seq");
  REQUIRE(ev.size() == 4);
  nlohmann::json w = nlohmann::json::parse(ev.text(0, 0));
  nlohmann::json d = nlohmann::json::parse(ev.text(1, 0));
  CHECK(w["rewritten_from"] == old);
  CHECK(w["excluded_request"] == "1");
  CHECK(d["replaced_by"] == fresh);
  std::string trail =
      column(*s, "SELECT string_agg(details || counts, ' ') FROM lethe.audit_log")[0];
  test::require_no_pii(outputs + trail, pii);
  test::require_no_pii(outputs + trail, {gone, kept, other});
  CHECK(t.lethe("audit verify").exit == 0);
}

// Index items of `index` whose key bytes hold `value` (pageinspect, every page but the meta page).
long long index_items_holding(db::Session& s, const std::string& index, const std::string& value) {
  return s
      .exec("SELECT count(*) FROM generate_series(1, (pg_relation_size($1::regclass) / 8192)::int "
            "- 1) p, bt_page_items(get_raw_page($1::text, p)) i WHERE i.data LIKE '%' || "
            "rtrim(regexp_replace(encode(convert_to($2, 'UTF8'), 'hex'), '(..)', '\\1 ', 'g')) || "
            "'%'",
            {index, value})
      .integer(0, 0);
}

TEST_CASE("request run: the erased buyer's email leaves the buyer column's index too, where "
          "a plain VACUUM (index cleanup bypassed) leaves it as an item") {
  test::TestDb t("request_index", 6000);
  t.migrate_and_grant();
  auto s = t.admin();
  s->exec("CREATE EXTENSION IF NOT EXISTS pageinspect");
  s->exec("CREATE INDEX orders_buyer ON orders (buyer_email)");
  s->exec("VACUUM ANALYZE orders");
  std::vector<std::string> buyers =
      column(*s, "SELECT buyer_email FROM orders WHERE buyer_email LIKE '%@%' GROUP BY 1 HAVING "
                 "count(*) = 1 ORDER BY 1 LIMIT 2");
  REQUIRE(buyers.size() == 2);
  REQUIRE(s->exec("SELECT pg_relation_size('orders') / 8192").integer(0, 0) >= 100);
  CHECK(index_items_holding(*s, "orders_buyer", buyers[0]) == 1);

  // The control: one row deleted and a plain VACUUM. One page of 100 or more is under the 2%
  // below which PostgreSQL skips the index pass, and the item stays.
  s->exec("DELETE FROM orders WHERE buyer_email = $1", {buyers[1]});
  s->exec("VACUUM orders");
  CHECK(index_items_holding(*s, "orders_buyer", buyers[1]) == 1);
  // Cleared, so the run below starts with no page of removed rows (two would pass the 2%).
  s->exec("VACUUM (INDEX_CLEANUP ON) orders");
  REQUIRE(index_items_holding(*s, "orders_buyer", buyers[1]) == 0);

  auto cfg = t.write_config("erase.toml", erase_held(t.config_text()));
  test::write_file(t.dir() / "email.txt", buyers[0] + "\n", 0600);
  REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref "
                  "IX --scope buyer:- < " +
                      (t.dir() / "email.txt").string(),
                  cfg)
              .exit == 0);
  test::RunResult r = t.lethe("request run --json", cfg);
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(s->exec("SELECT count(*) FROM orders WHERE buyer_email = $1", {buyers[0]}).integer(0, 0) ==
        0);
  CHECK(index_items_holding(*s, "orders_buyer", buyers[0]) == 0);
  CHECK(show(t, 1, cfg)["stored_state"] == "complete");
}

TEST_CASE("request copy: a registered copy holds the request open until it is recorded "
          "destroyed, and one outliving the 90 days is an alarm at once") {
  test::TestDb t("request_copies", 0);
  t.migrate_and_grant();
  auto s = t.admin();
  std::string now = s->exec("SELECT now()::text").text(0, 0);
  test::insert_order(*s, now, {"111-0000000-0000001", "Shipped", "2 days", "2 days"});
  REQUIRE(t.lethe("--operator alice request add --action delete --reason notice --amazon-ref "
                  "CP --scope order:111-0000000-0000001")
              .exit == 0);
  test::RunResult r = t.lethe("--operator alice request copy add 1 --what 'WAL archive on "
                              "backup-2' --expires-at \"$(date -u -d '+30 days' '+%F %T+00')\"");
  INFO(r.err);
  REQUIRE(r.exit == 0);
  r = t.lethe("--operator alice request copy add 1 --what 'export for finance' --expires-at "
              "\"$(date -u -d '+100 days' '+%F %T+00')\"");
  REQUIRE(r.exit == 0);
  CHECK(r.err.find("expires after the request's 90-day deadline") != std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE kind = 'alarm' AND exit_reason = "
                "'copy_outlives_deadline'")
            .integer(0, 0) == 1);
  CHECK(t.lethe("request copy add 1 --what x --expires-at tomorrow").exit == 64); // who?

  REQUIRE(t.lethe("request run").exit == 0);
  nlohmann::json j = show(t, 1, t.config());
  CHECK(j["stored_state"] == "live_erased");
  REQUIRE(j["registered_copies"].size() == 2);
  CHECK(j["registered_copies"][1]["outlives_deadline"] == true);
  REQUIRE(t.lethe("--operator bob request copy destroyed 1 --copy 1 --reason 'pruned'").exit == 0);
  r = t.lethe("request run --json");
  CHECK(nlohmann::json::parse(r.out)[0]["step"] == "waiting");
  CHECK(t.lethe("--operator bob request copy destroyed 1 --copy 9 --reason x").exit == 64);
  REQUIRE(t.lethe("--operator bob request copy destroyed 1 --copy 2 --reason 'deleted'").exit == 0);
  REQUIRE(t.lethe("request run").exit == 0);
  j = show(t, 1, t.config());
  CHECK(j["stored_state"] == "complete");
  CHECK(j["registered_copies"][0]["destroyed_at"].is_string());
  REQUIRE(t.lethe("request certify 1 --out " + (t.dir() / "c.txt").string()).exit == 0);
  std::string text = util::read_file(t.dir() / "c.txt");
  CHECK(text.find("copy 2 (export for finance): destroyed ") != std::string::npos);
  CHECK(text.find("(recorded by bob)") != std::string::npos);
}
