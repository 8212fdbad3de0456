// #8 items 9, 10, 13: a restore writes or loads nothing unless the whole archive verified against
// its manifest, leaves nothing decrypted behind when it fails, audits failures, and each refusal
// has its own exit code and HINT (bad data, wrong key, full spool, missing recipients file).
#include "support/cluster.hpp"
#include "worker/archive/tar.hpp"
#include "worker/audit/trail.hpp"
#include "worker/crypto/esdk.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <unistd.h>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

struct Member {
  std::string name;
  std::string data;
  long long rows = 0; // without the header line
};

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Makes the catalog's length and SHA-256 of archive `id` those of its file as it is now.
// Appends the archive_written record a real archive run would have written for `id`, so the
// file passes restore's check against the audit chain and the content checks are what is tested.
void record_evidence(const test::TestDb& t, db::Session& s, const std::string& id,
                     const std::string& bytes) {
  audit::Trail(t.dir() / "audit-anchor", t.dir() / "audit-spool", util::Identity{"tester", "x", ""})
      .append(s, audit::Record{audit::Kind::run, "archive run", "recorded", "archive_written",
                               std::nullopt,
                               "{\"orders\":1,\"bytes\":" + std::to_string(bytes.size()) + "}",
                               "{\"archive_id\":\"" + id + "\",\"sha256\":\"" +
                                   crypto::hex(crypto::sha256(bytes)) + "\"}"});
}

// Catalogs the (damaged) file at `path` as a new archive with the facts of archive `id` and its
// own true length, SHA-256 and archive_written record, as if it had been written so: past the
// length/SHA-256 checks, the content check must still hold. Returns the new archive's id.
std::string recatalog(const test::TestDb& t, db::Session& s, const std::string& id,
                      const std::filesystem::path& path) {
  std::string bytes = file_bytes(path);
  std::string copy = id + "-damaged";
  s.exec(
      "INSERT INTO lethe.archives (archive_id, path, size_bytes, sha256, as_of, "
      "retention_until, pii_map_digest, recipients, row_counts, orders) SELECT $2, $3, $4, $5, "
      "as_of, retention_until, pii_map_digest, recipients, row_counts, orders FROM "
      "lethe.archives WHERE archive_id = $1",
      {id, copy, path.string(), std::to_string(bytes.size()), crypto::hex(crypto::sha256(bytes))});
  record_evidence(t, s, copy, bytes);
  return copy;
}

// A well-formed archive as anyone with the public key can write one: tables.json, `members`,
// and a manifest whose member facts are `manifest_members` (default: the true ones). Cataloged
// with its true length and SHA-256.
void craft(const test::TestDb& t, db::Session& s, const std::string& id, const std::string& tables,
           const std::vector<Member>& members, std::vector<Member> manifest_members = {}) {
  crypto::RsaKey pub = crypto::load_public_key(t.dir() / "archive.pub");
  if (manifest_members.empty()) {
    manifest_members = members;
  }
  std::string list = "[";
  for (const Member& m : manifest_members) {
    list += std::string(list.size() > 1 ? "," : "") + "{\"name\":\"" + m.name +
            "\",\"table\":\"x\",\"rows\":" + std::to_string(m.rows) + ",\"sha256\":\"" +
            crypto::hex(crypto::sha256(m.data)) + "\"}";
  }
  std::string manifest =
      "{\"archive_id\":\"" + id + "\",\"members\":" + list + "],\"tables\":" + tables + "}";
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
    for (const Member& m : members) {
      tar.add(m.name, m.data);
    }
    tar.add("manifest.json", manifest);
    tar.finish();
  }
  enc.finish();
  std::filesystem::path path = t.dir() / (id + ".lethe-archive");
  test::write_file(path, bytes);
  s.exec("INSERT INTO lethe.archives (archive_id, path, size_bytes, sha256, as_of, "
         "retention_until, pii_map_digest, recipients, row_counts, orders) VALUES ($1, $2, $3, "
         "$4, now(), '2036-01-01', 'x', '[]', '{}', 1)",
         {id, path.string(), std::to_string(bytes.size()), crypto::hex(crypto::sha256(bytes))});
  record_evidence(t, s, id, bytes);
}

const std::string k_one_int =
    R"([{"table":"public.t","columns":[{"name":"id","type":"integer"}]}])";

// Every file under `dir` (recursively).
std::vector<std::string> files_under(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) {
    return out;
  }
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    out.push_back(e.path().string());
  }
  return out;
}

long long failed_restores(db::Session& s) {
  return s
      .exec("SELECT count(*) FROM lethe.audit_log WHERE job = 'archive restore' AND outcome = "
            "'failed'")
      .integer(0, 0);
}

bool schema_exists(db::Session& s, const std::string& name) {
  return s.exec("SELECT count(*) FROM pg_namespace WHERE nspname = $1", {name}).integer(0, 0) == 1;
}

} // namespace

TEST_CASE("archive restore: a truncated archive leaves no decrypted file and is audited failed") {
  // Enough orders for an archive of more than one 64 KiB frame: the first frames decrypt and verify
  // before the truncation is found, as with any real archive.
  test::TestDb t("restore_truncated", 12000, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  std::vector<std::string> pii = t.pii_values();
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  db::Rows a = s->exec("SELECT archive_id, path FROM lethe.archives");
  std::string id = a.text(0, 0);
  std::filesystem::path path = a.text(0, 1);
  REQUIRE(std::filesystem::file_size(path) > 64 * 1024 + 20000);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1000);
  id = recatalog(t, *s, id, path); // past the length/SHA-256 checks: the content check must hold
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();

  std::filesystem::path out = t.dir() / "restored";
  test::RunResult r = t.lethe("archive restore " + id + key + " --into " + out.string() +
                              " --reason 'legal hold' --operator dana");
  INFO(r.err);
  CHECK(r.exit == 65);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(files_under(out).empty()); // not even the private staging directory
  test::require_no_pii(r.out + r.err, pii);
  CHECK(failed_restores(*s) == 1);
  db::Rows audit = s->exec("SELECT actor, exit_reason, details FROM lethe.audit_log WHERE job = "
                           "'archive restore' AND outcome = 'failed'");
  REQUIRE(audit.size() == 1);
  CHECK(audit.text(0, 0) == "dana");
  CHECK(audit.text(0, 1) == exit_name(Exit::data));
  CHECK(audit.text(0, 2).find("\"reason\":\"legal hold\"") != std::string::npos);

  test::RunResult q = t.lethe("archive restore " + id + key + " --into-db scratch --reason x");
  CHECK(q.exit == 65);
  CHECK_FALSE(schema_exists(*s, "scratch"));
  CHECK(failed_restores(*s) == 2);
}

TEST_CASE("archive restore: a member that differs from the manifest is caught before any write") {
  test::TestDb t("restore_manifest", 0);
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();
  // The first member is fine; the second is not what the manifest says. Restoring member by
  // member would have written (or loaded) the first before seeing the second.
  Member good{"public.t/part-00001.csv", "id\n1\n", 1};
  Member bad{"public.t/part-00002.csv", "2\n", 1};
  Member claimed{"public.t/part-00002.csv", "3\n", 1};
  craft(t, *s, "a-forged", k_one_int, {good, bad}, {good, claimed});
  std::filesystem::path out = t.dir() / "out";
  test::RunResult r =
      t.lethe("archive restore a-forged" + key + " --into " + out.string() + " --reason test");
  INFO(r.err);
  CHECK(r.exit == 65);
  CHECK(r.err.find("differs from its manifest") != std::string::npos);
  CHECK(files_under(out).empty());
  test::RunResult q = t.lethe("archive restore a-forged" + key + " --into-db scratch --reason x");
  CHECK(q.exit == 65);
  CHECK_FALSE(schema_exists(*s, "scratch"));

  // A member the manifest does not name at all.
  Member extra{"public.u/part-00001.csv", "id\n9\n", 1};
  craft(t, *s, "a-extra", k_one_int, {good, extra}, {good});
  test::RunResult e =
      t.lethe("archive restore a-extra" + key + " --into " + out.string() + " --reason test");
  CHECK(e.exit == 65);
  CHECK(e.err.find("does not name") != std::string::npos);
  CHECK(files_under(out).empty());

  // The same archive, consistent, restores.
  craft(t, *s, "a-fine", k_one_int, {good});
  test::RunResult ok =
      t.lethe("archive restore a-fine" + key + " --into " + out.string() + " --reason test");
  INFO(ok.err);
  CHECK(ok.exit == 0);
  CHECK(std::filesystem::exists(out / "public.t" / "part-00001.csv"));
  CHECK(std::filesystem::exists(out / "manifest.json"));
  CHECK(files_under(out).size() == 4); // two JSON files, the table directory and its member
}

TEST_CASE("archive restore: crafted column type and a member that misfits its table are bad data") {
  test::TestDb t("restore_crafted_types", 0);
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();
  Member one{"public.t/part-00001.csv", "id\n1\n", 1};
  for (const std::string type : {"int)", "trigger", "nosuchtype"}) {
    std::string id = "a-type-" + std::to_string(type.size());
    craft(t, *s, id, R"([{"table":"public.t","columns":[{"name":"id","type":")" + type + R"("}]}])",
          {one});
    test::RunResult r = t.lethe("archive restore " + id + key + " --into-db scratch --reason x");
    INFO(type << ": " << r.err);
    CHECK(r.exit == 65);
    CHECK(r.err.find("HINT:") != std::string::npos);
    CHECK_FALSE(schema_exists(*s, "scratch"));
  }

  Member two_columns{"public.t/part-00001.csv", "id\n1,2\n", 1};
  craft(t, *s, "a-misfit", k_one_int, {two_columns});
  test::RunResult m = t.lethe("archive restore a-misfit" + key + " --into-db scratch --reason x");
  INFO(m.err);
  CHECK(m.exit == 65);
  CHECK(m.err.find("does not match its table") != std::string::npos);
  CHECK(m.err.find("HINT:") != std::string::npos);
  CHECK_FALSE(schema_exists(*s, "scratch"));
}

TEST_CASE("archive restore: into an existing schema is refused with a HINT, the schema untouched") {
  test::TestDb t("restore_existing_schema", 0);
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();
  craft(t, *s, "a-fine", k_one_int, {{"public.t/part-00001.csv", "id\n1\n", 1}});
  s->exec("CREATE SCHEMA scratch");
  s->exec("CREATE TABLE scratch.keep (x int)");
  test::RunResult r = t.lethe("archive restore a-fine" + key + " --into-db scratch --reason x");
  INFO(r.err);
  CHECK(r.exit == 73);
  CHECK(r.err.find("already exists") != std::string::npos);
  CHECK(r.err.find("HINT: choose another --into-db name") != std::string::npos);
  CHECK(s->exec("SELECT to_regclass('scratch.keep') IS NOT NULL").text(0, 0) == "t");
  CHECK(failed_restores(*s) == 1);
}

TEST_CASE(
    "archive verify --read-data and restore with the wrong private key: the key, not damage") {
  test::TestDb t("restore_wrong_key", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  REQUIRE(t.lethe("archive run --as-of '" + k_as_of + "'").exit == 0);
  std::string id = s->exec("SELECT archive_id FROM lethe.archives").text(0, 0);
  std::filesystem::path other = t.dir() / "other";
  std::filesystem::create_directories(other);
  REQUIRE(test::run_shell(std::string(LETHE_BIN) + " keygen --out-private " +
                              (other / "k.pem").string() + " --out-public " +
                              (other / "k.pub").string(),
                          t.dir())
              .exit == 0);
  std::string wrong = " --private-key " + (other / "k.pem").string();

  test::RunResult v = t.lethe("archive verify --read-data" + wrong);
  INFO(v.out << v.err);
  CHECK(v.exit == 65);
  CHECK(v.err.find("restore the damaged file") == std::string::npos);
  CHECK(v.err.find("does not fit") != std::string::npos);
  CHECK(v.out.find("archive.pub") != std::string::npos); // which key it was written to
  CHECK(s->exec("SELECT exit_reason FROM lethe.audit_log WHERE job = 'archive verify' ORDER BY "
                "seq DESC LIMIT 1")
            .text(0, 0) == "key_mismatch");

  std::filesystem::path out = t.dir() / "out";
  test::RunResult r =
      t.lethe("archive restore " + id + wrong + " --into " + out.string() + " --reason x");
  INFO(r.err);
  CHECK(r.exit == 65);
  CHECK(r.err.find("does not fit") != std::string::npos);
  CHECK(r.err.find("archive.pub") != std::string::npos);
  CHECK(r.err.find("HINT: pass --private-key") != std::string::npos);
  CHECK(files_under(out).empty());
}

TEST_CASE("archive restore: file system errors are 73/74/77 with the path, never 70") {
  test::TestDb t("restore_fs_errors", 0);
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  std::string key = " --private-key " + (t.dir() / "archive.pem").string();
  craft(t, *s, "a-fine", k_one_int, {{"public.t/part-00001.csv", "id\n1\n", 1}});
  test::write_file(t.dir() / "plain-file", "x");
  std::filesystem::path under_file = t.dir() / "plain-file" / "out";
  test::RunResult r =
      t.lethe("archive restore a-fine" + key + " --into " + under_file.string() + " --reason x");
  INFO(r.err);
  CHECK(r.exit == 73);
  CHECK(r.err.find(under_file.string()) != std::string::npos);
  CHECK(r.err.find("HINT:") != std::string::npos);
  CHECK(r.err.find("bug in lethe") == std::string::npos);
}

TEST_CASE("archive run: a full spool is exit 74 with the writer's own HINT") {
  // RLIMIT_FSIZE stands in for a full file system: writes past it fail (EFBIG) as they would
  // with ENOSPC, without root or a mount. SIGXFSZ is ignored so the write returns the error.
  // More than one 64 KiB frame, so the failing write happens inside libarchive's write callback
  // (the encryptor writes a frame as the tar writer fills it), not at the final flush.
  test::TestDb t("archive_full_spool", 12000, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  test::RunResult r =
      test::run_shell("trap '' XFSZ; ulimit -f 8; " + std::string(LETHE_BIN) + " --config " +
                          t.config().string() + " archive run --as-of '" + k_as_of + "'",
                      t.dir());
  INFO(r.err);
  CHECK(r.exit == 74);
  CHECK(r.err.find("cannot write") != std::string::npos);
  CHECK(r.err.find("HINT: check free space") != std::string::npos);
}

TEST_CASE("config check: archive.recipients naming a missing file is 78 with its place") {
  test::TestDb t("config_recipients", 0);
  t.migrate_and_grant();
  std::string text = t.config_text();
  std::string missing = (t.dir() / "no-such.pub").string();
  text = test::set_key(text, "recipients", "[\"" + missing + "\"]");
  std::filesystem::path cfg = t.write_config("missing-recipient.toml", text);
  for (const std::string args : {"config check --offline", "config check"}) {
    test::RunResult r = t.lethe(args, cfg);
    INFO(args << ": " << r.err);
    CHECK(r.exit == 78);
    CHECK(r.err.find("archive.recipients") != std::string::npos);
    CHECK(r.err.find(missing) != std::string::npos);
    CHECK(r.err.find("missing-recipient.toml:") != std::string::npos);
    CHECK(r.err.find("HINT:") != std::string::npos);
  }
}
