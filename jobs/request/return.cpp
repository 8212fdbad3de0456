// A return request's data: every mapped row of its orders, all tables (keep tables included),
// as CSV members of a tar + zstd container inside one AWS Encryption SDK message to the public
// key the operator registered (raw RSA keyring "lethe-return"/"return"), written through the
// vault before the erase. The file is a copy of the subjects' data until the operator hands it
// to Amazon and records it destroyed, so it is registered as one of the request's copies.
#include "jobs/request/common.hpp"
#include "worker/archive/tar.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/crypto/keys.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/db/store/requests.hpp"
#include "worker/vault/sealed.hpp"

namespace lethe::jobs::request {
namespace {

namespace store = db::store;

// Streams table `t`'s rows of the request's orders into CSV members of at most `limit` bytes
// (each with the header line); returns the rows.
long long return_table(db::Transaction& tx, const settings::Settings& s, long long id,
                       const settings::PiiTable& t, lethe::archive::TarWriter& tar, size_t limit) {
  std::string where = db::rows_of_orders(s, t, "x", [id](const std::string& columns) {
    return columns +
           "::text IN (SELECT ro.order_key FROM lethe.request_orders ro WHERE "
           "ro.request_id = " +
           std::to_string(id) + ")";
  });
  std::string header;
  std::string buffer;
  long long rows = 0;
  int part = 0;
  auto flush = [&] {
    char name[32];
    std::snprintf(name, sizeof name, "/part-%05d.csv", ++part);
    tar.add(t.table + name, buffer);
    std::fill(buffer.begin(), buffer.end(), '\0');
    buffer = header;
  };
  tx.copy_out("COPY (SELECT x.* FROM " + db::quote_ident(t.table) + " x WHERE " + where +
                  ") TO STDOUT WITH (FORMAT csv, HEADER true)",
              [&](std::string_view line) {
                if (header.empty()) {
                  header.assign(line);
                  buffer = header;
                  return;
                }
                buffer.append(line);
                ++rows;
                if (buffer.size() >= limit) {
                  flush();
                }
              });
  if (buffer.size() > header.size() || part == 0) {
    flush();
  }
  std::fill(buffer.begin(), buffer.end(), '\0');
  return rows;
}

} // namespace

void write_return(Context& ctx, const store::RequestRow& r) {
  const settings::Settings& s = ctx.settings();
  if (crypto::hex(crypto::sha256(util::read_file(r.return_to))) != r.return_key_sha256) {
    throw Error(Exit::data,
                "the --return-to key " + r.return_to + " of request " + std::to_string(r.id) +
                    " changed since the request was registered",
                "put back the key registered with the request (its SHA-256 is in `lethe request "
                "show " +
                    std::to_string(r.id) + " --json`), or cancel and register it again");
  }
  crypto::RsaKey key = crypto::load_public_key(r.return_to);
  vault::ensure_spool(s.requests.return_dir, "requests.return_dir");
  std::filesystem::path path =
      s.requests.return_dir / ("request-" + std::to_string(r.id) + ".lethe-return");
  crypto::esdk::EncryptParams params;
  params.recipients = {{"lethe-return", "return", &key}};
  params.context = {{"lethe-object", "return"},
                    {"lethe-request-id", std::to_string(r.id)},
                    {"amazon-ref", r.amazon_ref}};
  vault::SealedWriter sealed(path, params);
  lethe::archive::TarWriter tar([&](const unsigned char* p, size_t n) { sealed.write(p, n); });
  util::Json counts = util::Json::object();
  std::vector<const settings::PiiTable*> tables = s.pii_tables();
  std::vector<const settings::PiiTable*> kept = s.kept_tables();
  tables.insert(tables.end(), kept.begin(), kept.end());
  db::Session& db = ctx.ready_db();
  db.transact([&](db::Transaction& tx) {
    // One snapshot for every table, so the members agree with each other.
    tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    for (const settings::PiiTable* t : tables) {
      counts[t->table] =
          return_table(tx, s, r.id, *t, tar, static_cast<size_t>(s.archive.member_mib) << 20);
    }
  });
  tar.add("manifest.json", util::dump({{"request_id", r.id},
                                       {"amazon_ref", r.amazon_ref},
                                       {"format", "one CSV member per table part, with header"},
                                       {"rows_by_table", counts}}));
  tar.finish();
  const vault::Sealed& done = sealed.finish();
  sealed.commit();
  vault::check_written(done, "return file " + path.string(),
                       "the disk did not keep what was written; check it, then run `lethe "
                       "request run` again");
  std::optional<audit::Stored> stored;
  db.transact([&](db::Transaction& tx) {
    store::set_return_file(tx, r.id, path.string(), done.size, done.sha256);
    int no = store::add_registered_copy(
        tx, r.id, "return file " + path.string() + " (hand it to Amazon, then record it destroyed)",
        r.copies_deadline, "lethe");
    stored = ctx.trail().append_in(
        tx, audit::Record{audit::Kind::run, "request", "done", "return_written", std::nullopt,
                          util::dump({{"rows_by_table", counts}}),
                          util::dump({{"request_id", r.id},
                                      {"file", path.string()},
                                      {"bytes", done.size},
                                      {"sha256", done.sha256},
                                      {"key_sha256", r.return_key_sha256},
                                      {"copy", no}})});
  });
  ctx.trail().anchor(*stored);
}

} // namespace lethe::jobs::request
