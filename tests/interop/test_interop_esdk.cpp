// Interop, both directions, with the official AWS Encryption SDK (JavaScript) as the oracle:
// what lethe writes the SDK decrypts to the same bytes and context; what the SDK writes with
// suite 0x0478 lethe decrypts.
#include "support/cluster.hpp"
#include "worker/util/files.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <sys/wait.h>

namespace fs = std::filesystem;
using lethe::util::read_file;

namespace {

const std::string k_oracle = LETHE_SOURCE_DIR "/tests/interop/oracle.mjs";

struct Keys {
  fs::path dir;
  std::vector<fs::path> priv;
  std::vector<fs::path> pub;
};

int sh(const std::string& cmd) {
  int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Three RSA-4096 pairs made by `lethe keygen`, shared by every test in this binary.
const Keys& keys() {
  static const Keys k = [] {
    Keys out;
    out.dir = fs::path(LETHE_SCRATCH) / ("interop-" + std::to_string(::getpid()));
    fs::remove_all(out.dir);
    fs::create_directories(out.dir);
    for (int i = 0; i < 3; ++i) {
      out.priv.push_back(out.dir / ("k" + std::to_string(i) + ".pem"));
      out.pub.push_back(out.dir / ("k" + std::to_string(i) + ".pub"));
      REQUIRE(sh(std::string(LETHE_BIN) + " keygen --out-private " + out.priv.back().string() +
                 " --out-public " + out.pub.back().string() + " 2>/dev/null") == 0);
    }
    return out;
  }();
  return k;
}

fs::path make_input(const std::string& name, size_t size) {
  fs::path p = keys().dir / name;
  std::mt19937_64 rng(size);
  std::string data(size, '\0');
  for (char& c : data) {
    c = static_cast<char>(rng());
  }
  std::ofstream(p, std::ios::binary) << data;
  return p;
}

std::string context_args(const std::vector<std::string>& ctx) {
  std::string out;
  for (const std::string& c : ctx) {
    out += " --context '" + c + "'";
  }
  return out;
}

// lethe encrypts `size` bytes; the SDK decrypts with each recipient's key.
void lethe_to_sdk(const std::string& name, size_t size, size_t frame, int recipients,
                  const std::vector<std::string>& ctx, const std::string& expected_ctx_json) {
  INFO(name);
  fs::path in = make_input(name + ".bin", size);
  fs::path enc = keys().dir / (name + ".lethe");
  std::string cmd = std::string(LETHE_BIN) + " encrypt --key-namespace lethe-archive --key-name k";
  for (int i = 0; i < recipients; ++i) {
    cmd += " --recipient " + keys().pub[static_cast<size_t>(i)].string();
  }
  if (frame > 0) {
    cmd += " --frame-length " + std::to_string(frame);
  }
  cmd += context_args(ctx) + " --in " + in.string() + " --out " + enc.string() + " 2>/dev/null";
  REQUIRE(sh(cmd) == 0);
  for (int i = 0; i < recipients; ++i) {
    fs::path out = keys().dir / (name + ".sdk" + std::to_string(i));
    fs::path ctx_out = keys().dir / (name + ".ctx" + std::to_string(i));
    REQUIRE(sh("node " + k_oracle + " decrypt --private " +
               keys().priv[static_cast<size_t>(i)].string() + " --ns lethe-archive --name k --in " +
               enc.string() + " --out " + out.string() + " --context-out " + ctx_out.string()) ==
            0);
    CHECK(read_file(out) == read_file(in));
    std::string meta = read_file(ctx_out);
    CHECK(meta.find("\"suiteId\":1144") != std::string::npos);
    CHECK(meta.find("\"encryptionContext\":" + expected_ctx_json) != std::string::npos);
    CHECK(meta.find("\"frameLength\":" + std::to_string(frame > 0 ? frame : 65536)) !=
          std::string::npos);
  }
}

// The SDK encrypts `size` bytes with suite 0x0478 and `frame`; lethe decrypts.
void sdk_to_lethe(size_t size, size_t frame) {
  std::string name = "sdk-" + std::to_string(size) + "-" + std::to_string(frame);
  INFO(name);
  fs::path in = make_input(name + ".bin", size);
  fs::path enc = keys().dir / (name + ".sdk");
  fs::path out = keys().dir / (name + ".out");
  REQUIRE(sh("node " + k_oracle + " encrypt --public " + keys().pub[0].string() +
             " --ns lethe-archive --name k --frame " + std::to_string(frame) +
             " --context origin=sdk --context size=" + std::to_string(size) + " --in " +
             in.string() + " --out " + enc.string()) == 0);
  REQUIRE(sh(std::string(LETHE_BIN) + " decrypt --private-key " + keys().priv[0].string() +
             " --key-namespace lethe-archive --key-name k --context origin=sdk --in " +
             enc.string() + " --out " + out.string() + " 2>/dev/null") == 0);
  CHECK(read_file(out) == read_file(in));
  // The context is checked: a pair the message lacks is refused.
  CHECK(sh(std::string(LETHE_BIN) + " decrypt --private-key " + keys().priv[0].string() +
           " --key-namespace lethe-archive --key-name k --context origin=lethe --in " +
           enc.string() + " >/dev/null 2>&1") == 65);
}

} // namespace

TEST_CASE("lethe's messages decrypt with the official SDK") {
  lethe_to_sdk("empty", 0, 0, 1, {}, "{}");
  lethe_to_sdk("one-byte", 1, 0, 1, {"purpose=test"}, "{\"purpose\":\"test\"}");
  lethe_to_sdk("one-frame", 4096, 4096, 1, {}, "{}");
  lethe_to_sdk(
      "frames-and-partial", 10 * 4096 + 123, 4096, 1,
      {"lethe-object=archive-7", "schema=1", "retention-until=2036-12-31"},
      "{\"lethe-object\":\"archive-7\",\"retention-until\":\"2036-12-31\",\"schema\":\"1\"}");
  lethe_to_sdk("three-recipients", 200000, 0, 3, {"a=1"}, "{\"a\":\"1\"}");
}

TEST_CASE("a 50 MiB lethe message decrypts with the official SDK") {
  lethe_to_sdk("fifty-mib", 50U << 20, 0, 1, {"size=50MiB"}, "{\"size\":\"50MiB\"}");
}

TEST_CASE("the official SDK's 0x0478 messages decrypt with lethe") {
  for (size_t frame : {512, 4096, 65536}) {
    for (size_t size : {size_t{0}, size_t{1}, frame, 3 * frame + 7}) {
      sdk_to_lethe(size, frame);
    }
  }
}

// An archive lethe writes opens with the official SDK, zstd and tar, and its members hold the
// source rows byte for byte.
TEST_CASE("an archive opens with the official SDK, zstd and tar, and holds the source rows") {
  const std::string as_of = "2026-06-30 12:00:00+00";
  lethe::test::TestDb t("interop_archive", 300, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  // The source rows of the held orders that are due, as CSV lines, per table.
  std::map<std::string, std::vector<std::string>> expected;
  const std::map<std::string, std::string> where{
      {"public.orders", "x.amazon_order_id IN (SELECT amazon_order_id FROM k)"},
      {"public.shipping_addresses", "x.amazon_order_id IN (SELECT amazon_order_id FROM k)"},
      {"public.buyer_tax_info", "x.amazon_order_id IN (SELECT amazon_order_id FROM k)"},
      {"public.buyer_tax_classifications",
       "x.tax_info_id IN (SELECT tax_info_id FROM buyer_tax_info WHERE amazon_order_id IN (SELECT "
       "amazon_order_id FROM k))"}};
  s->transact([&](lethe::db::Transaction& tx) {
    tx.exec(
        "CREATE TEMP TABLE k AS SELECT amazon_order_id FROM lethe.pii_state_public_orders WHERE "
        "held AND due_at <= '" +
        as_of + "'::timestamptz");
    for (const auto& [table, cond] : where) {
      tx.copy_out("COPY (SELECT x.* FROM " + table + " x WHERE " + cond +
                      ") TO STDOUT WITH (FORMAT csv, HEADER true)",
                  [&](std::string_view row) { expected[table].emplace_back(row); });
    }
  });
  REQUIRE(expected["public.orders"].size() > 10);

  REQUIRE(t.lethe("archive run --as-of '" + as_of + "'").exit == 0);
  std::string path = s->exec("SELECT path FROM lethe.archives").text(0, 0);
  std::string id = s->exec("SELECT archive_id FROM lethe.archives").text(0, 0);
  fs::path work = t.dir() / "opened";
  fs::create_directories(work);
  REQUIRE(sh("node " + k_oracle + " decrypt --private " + (t.dir() / "archive.pem").string() +
             " --ns lethe-archive --name archive-2026 --in " + path + " --out " +
             (work / "archive.tar.zst").string() + " --context-out " +
             (work / "meta.json").string()) == 0);
  std::string meta = read_file(work / "meta.json");
  CHECK(meta.find("\"lethe-archive-id\":\"" + id + "\"") != std::string::npos);
  CHECK(meta.find("\"lethe-retention-until\":\"2036-06-30\"") != std::string::npos);
  REQUIRE(sh("zstd -q -dc " + (work / "archive.tar.zst").string() + " | tar -xf - -C " +
             work.string()) == 0);
  for (const auto& [table, rows] : expected) {
    INFO(table);
    std::string all;
    for (int part = 1; fs::exists(work / table / ("part-0000" + std::to_string(part) + ".csv"));
         ++part) {
      all += read_file(work / table / ("part-0000" + std::to_string(part) + ".csv"));
    }
    std::vector<std::string> got;
    std::istringstream lines(all);
    for (std::string line; std::getline(lines, line);) {
      got.push_back(line + "\n");
    }
    REQUIRE_FALSE(got.empty());
    CHECK(got.front() == rows.front()); // the header
    std::vector<std::string> a(got.begin() + 1, got.end());
    std::vector<std::string> b(rows.begin() + 1, rows.end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CHECK(a == b);
  }
  std::string manifest = read_file(work / "manifest.json");
  CHECK(manifest.find("\"archive_id\":\"" + id + "\"") != std::string::npos);
  CHECK(manifest.find("\"format\":\"lethe-archive-1\"") != std::string::npos);
}

TEST_CASE("a return request's file opens with the official SDK and holds exactly the subject's "
          "rows of every mapped table") {
  lethe::test::TestDb t("interop_return", 120);
  t.migrate_and_grant();
  auto s = t.admin();
  std::vector<std::string> ids;
  lethe::db::Rows picked = s->exec("SELECT amazon_order_id FROM orders WHERE is_business_order "
                                   "ORDER BY 1 LIMIT 1");
  REQUIRE(picked.size() == 1);
  ids.push_back(picked.text(0, 0));
  ids.push_back(
      s->exec("SELECT min(amazon_order_id) FROM orders WHERE NOT is_business_order").text(0, 0));
  const std::string email = "returned.buyer@buyer.example";
  for (const std::string& id : ids) {
    s->exec("UPDATE orders SET buyer_email = $1 WHERE amazon_order_id = $2", {email, id});
  }
  const std::string in = "amazon_order_id IN ('" + ids[0] + "', '" + ids[1] + "')";
  std::map<std::string, std::vector<std::string>> expected;
  const std::vector<std::pair<std::string, std::string>> where = {
      {"public.orders", "x." + in},
      {"public.shipping_addresses", "x." + in},
      {"public.order_items", "x." + in},
      {"public.buyer_tax_info", "x." + in},
      {"public.buyer_tax_classifications",
       "x.tax_info_id IN (SELECT tax_info_id FROM buyer_tax_info WHERE " + in + ")"}};
  s->transact([&](lethe::db::Transaction& tx) {
    for (const auto& [table, cond] : where) {
      tx.copy_out("COPY (SELECT x.* FROM " + table + " x WHERE " + cond +
                      ") TO STDOUT WITH (FORMAT csv, HEADER true)",
                  [&](std::string_view row) { expected[table].emplace_back(row); });
    }
  });
  REQUIRE(expected["public.buyer_tax_classifications"].size() > 1);

  auto cfg = t.write_config("return.toml",
                            lethe::test::set_key(t.config_text(), "held_orders", "\"erase\""));
  lethe::test::write_file(t.dir() / "email.txt", email + "\n", 0600);
  lethe::test::RunResult r =
      t.lethe("--operator alice request add --action return --return-to " + keys().pub[0].string() +
                  " --amazon-ref RET-1 --reason notice --scope buyer:- < " +
                  (t.dir() / "email.txt").string(),
              cfg);
  INFO(r.err);
  REQUIRE(r.exit == 0);
  r = t.lethe("request run", cfg);
  INFO(r.err);
  REQUIRE(r.exit == 0);
  CHECK(s->exec("SELECT count(*) FROM orders WHERE " + in).integer(0, 0) == 0);
  std::string path = s->exec("SELECT return_file FROM lethe.requests").text(0, 0);
  CHECK(fs::path(path).parent_path() == t.dir() / "returns");
  CHECK((fs::status(path).permissions() & (fs::perms::group_all | fs::perms::others_all)) ==
        fs::perms::none);

  fs::path work = t.dir() / "opened";
  fs::create_directories(work);
  REQUIRE(sh("node " + k_oracle + " decrypt --private " + keys().priv[0].string() +
             " --ns lethe-return --name return --in " + path + " --out " +
             (work / "return.tar.zst").string() + " --context-out " +
             (work / "meta.json").string()) == 0);
  CHECK(read_file(work / "meta.json").find("\"amazon-ref\":\"RET-1\"") != std::string::npos);
  REQUIRE(sh("zstd -q -dc " + (work / "return.tar.zst").string() + " | tar -xf - -C " +
             work.string()) == 0);
  for (const auto& [table, rows] : expected) {
    INFO(table);
    std::vector<std::string> got;
    for (int part = 1; fs::exists(work / table / ("part-0000" + std::to_string(part) + ".csv"));
         ++part) {
      std::istringstream lines(
          read_file(work / table / ("part-0000" + std::to_string(part) + ".csv")));
      bool header = true;
      for (std::string line; std::getline(lines, line); header = false) {
        if (!header || got.empty()) {
          got.push_back(line + "\n");
        }
      }
    }
    REQUIRE_FALSE(got.empty());
    CHECK(got.front() == rows.front()); // the header
    std::vector<std::string> a(got.begin() + 1, got.end());
    std::vector<std::string> b(rows.begin() + 1, rows.end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CHECK(a == b);
  }
  // The file is a copy until it is handed over: the request waits for it.
  r = t.lethe("request show 1 --json", cfg);
  CHECK(r.out.find("return file " + path) != std::string::npos);
  CHECK(r.out.find("\"stored_state\":\"live_erased\"") != std::string::npos);
  lethe::test::require_no_pii(r.out + r.err, {email});
}

TEST_CASE("a backup opens with the official SDK and restores with pg_restore, marker and rows "
          "as in the source") {
  lethe::test::TestDb t("interop_backup", 200);
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  lethe::test::RunResult b = t.lethe("backup run");
  INFO(b.err);
  REQUIRE(b.exit == 0);
  std::string path = s->exec("SELECT path FROM lethe.backups").text(0, 0);
  std::string id = s->exec("SELECT backup_id FROM lethe.backups").text(0, 0);
  fs::path work = t.dir() / "opened";
  fs::create_directories(work);
  REQUIRE(sh("node " + k_oracle + " decrypt --private " + (t.dir() / "backup.pem").string() +
             " --ns lethe-backup --name backup-2026 --in " + path + " --out " +
             (work / "dump.pgc").string() + " --context-out " + (work / "meta.json").string()) ==
          0);
  CHECK(read_file(work / "meta.json").find("\"lethe-backup-dump\":\"" + id + "\"") !=
        std::string::npos);
  const lethe::test::ClusterInfo& c = lethe::test::cluster();
  std::string target = t.name() + "_restored";
  auto postgres = lethe::test::admin_session("postgres");
  postgres->exec("CREATE DATABASE " + lethe::db::quote_ident(target));
  int rc = sh("PGPASSWORD=$(cat " + c.admin_password_file + ") PGSSLMODE=verify-full " +
              "PGSSLROOTCERT=" + c.ca + " pg_restore --no-owner --exit-on-error --dbname='host=" +
              c.host + " port=" + std::to_string(c.port) + " user=" + c.admin +
              " dbname=" + target + "' " + (work / "dump.pgc").string());
  CHECK(rc == 0);
  {
    auto r = lethe::test::admin_session(target);
    CHECK(r->exec("SELECT count(*) FROM lethe.backup_markers WHERE backup_id = $1", {id})
              .integer(0, 0) == 1);
    for (const char* table : {"public.orders", "public.shipping_addresses", "public.order_items"}) {
      INFO(table);
      CHECK(lethe::test::table_digest(*r, table) == lethe::test::table_digest(*s, table));
    }
  }
  postgres->exec("DROP DATABASE " + lethe::db::quote_ident(target) + " WITH (FORCE)");
}
