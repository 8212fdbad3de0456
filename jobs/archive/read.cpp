// Reading archives back: verify (with or without the key), restore, list, expire, mark.
#include "jobs/archive/archive.hpp"
#include "jobs/archive/common.hpp"
#include "worker/archive/tar.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/runs.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"
#include "worker/util/signals.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sys/stat.h>
#include <unistd.h>

namespace lethe::jobs::archive {
namespace {

struct Cataloged {
  std::string id;
  std::string path;
  unsigned long long size = 0;
  std::string sha256;
  std::string state;
  std::string retention_until;
  long long orders = 0;
  std::string created_at;
  std::string destroyed_by;      // the actor of the destroyed record, as lethe wrote it
  std::string destroyed_by_role; // the database role the server stamped on that record
};

std::vector<Cataloged> catalog(db::Session& s, const std::string& where = "true",
                               const db::Params& params = {}) {
  db::Rows r =
      s.exec("SELECT archive_id, path, size_bytes, sha256, state, retention_until::text, "
             "orders, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
             "coalesce(destroyed_by, ''), coalesce(destroyed_by_role, '') "
             "FROM lethe.archives WHERE " +
                 where + " ORDER BY archive_id",
             params);
  std::vector<Cataloged> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.text(i, 0), r.text(i, 1), std::stoull(r.text(i, 2)), r.text(i, 3),
                   r.text(i, 4), r.text(i, 5), r.integer(i, 6), r.text(i, 7), r.text(i, 8),
                   r.text(i, 9)});
  }
  return out;
}

Cataloged find_archive(db::Session& s, const std::string& id) {
  std::vector<Cataloged> found = catalog(s, "archive_id = $1", {id});
  if (found.empty()) {
    throw Error(Exit::data, "no archive " + id + " in the catalog",
                "`lethe archive list` shows the archive ids");
  }
  return found.front();
}

ArchiveFacts facts_of(const Cataloged& a) {
  return {a.id, a.path, a.size, a.sha256, a.state};
}

// Counts CSV records in a stream (newlines outside quoted fields).
struct CsvCounter {
  bool quoted = false;
  long long lines = 0;
  void feed(std::string_view s) {
    for (char c : s) {
      if (c == '"') {
        quoted = !quoted;
      } else if (c == '\n' && !quoted) {
        ++lines;
      }
    }
  }
};

// The private key given does not fit an archive: the file is fine, the key is not its.
class KeyMismatch : public Error {
public:
  KeyMismatch(const std::string& msg, const std::string& hint) : Error(Exit::data, msg, hint) {}
};

struct MemberFacts {
  std::string sha256;
  long long rows = 0;
};

// Decrypts archive file `path` with `key` and walks its members: `member(name, data)` gets each
// member whole (members are bounded by archive.member_mib). Checks the encryption context names
// archive `id`.
void read_members(const settings::Settings& s, const std::string& path, const std::string& id,
                  const crypto::RsaKey& key,
                  const std::function<void(const std::string&, const std::string&)>& member) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(Exit::io, "cannot open archive file " + path,
                "fetch it back from cold storage to this path first");
  }
  crypto::esdk::DecryptParams params;
  params.keys.push_back({s.archive.key_namespace, s.archive.key_name, &key});
  std::string pending;
  size_t pending_at = 0;
  crypto::esdk::Decryptor dec(params, [&](const unsigned char* p, size_t n) {
    pending.append(reinterpret_cast<const char*>(p), n);
  });
  bool ended = false;
  bool context_checked = false;
  std::vector<char> cbuf(256 * 1024);
  lethe::archive::TarReader tar([&](unsigned char* buf, size_t cap) -> size_t {
    while (pending_at == pending.size() && !ended) {
      pending.clear();
      pending_at = 0;
      in.read(cbuf.data(), static_cast<std::streamsize>(cbuf.size()));
      std::streamsize n = in.gcount();
      if (n > 0) {
        dec.update(reinterpret_cast<const unsigned char*>(cbuf.data()), static_cast<size_t>(n));
      } else {
        dec.finish();
        ended = true;
      }
      if (!context_checked && dec.header_read()) {
        context_checked = true;
        auto it = dec.context().find("lethe-archive-id");
        if (it == dec.context().end() || it->second != id) {
          throw Error(Exit::data, "file " + path + " is not archive " + id,
                      "its encryption context names another archive: check the path");
        }
      }
    }
    size_t n = std::min(cap, pending.size() - pending_at);
    std::memcpy(buf, pending.data() + pending_at, n);
    pending_at += n;
    return n;
  });
  // Anyone with the public key can write a well-formed archive, so member names are checked
  // before they become paths: tables.json, manifest.json or TABLE/part-NNNNN.csv, nothing else.
  static const std::regex k_member(
      R"((tables|manifest)\.json|[A-Za-z0-9_$]+(\.[A-Za-z0-9_$]+)?/part-[0-9]{5}\.csv)");
  std::string name;
  while (tar.next(name)) {
    if (!std::regex_match(name, k_member)) {
      throw Error(Exit::data, "archive " + id + " has a member with an unexpected name",
                  "do not restore it; keep it for the incident record (C18)");
    }
    std::string data;
    tar.read([&](std::string_view chunk) { data.append(chunk); });
    member(name, data);
  }
}

// The keys archive `id` was written to, from its catalog row (names and public key digests,
// nothing secret), for telling an operator which private key to use.
std::string written_to(db::Session& db, const std::string& id) {
  db::Rows r = db.exec("SELECT coalesce(string_agg(format('%s/%s (public key %s, SHA-256 %s...)', "
                       "k->>'namespace', k->>'name', k->>'file', left(k->>'sha256', 16)), ', '), "
                       "'') "
                       "FROM lethe.archives a, jsonb_array_elements(a.recipients::jsonb) k "
                       "WHERE a.archive_id = $1",
                       {id});
  return r.empty() || r.text(0, 0).empty() ? std::string("keys the catalog does not list")
                                           : r.text(0, 0);
}

// read_members, telling a private key that does not fit apart from a damaged file.
void read_archive(db::Session& db, const settings::Settings& s, const std::string& path,
                  const std::string& id, const crypto::RsaKey& key,
                  const std::function<void(const std::string&, const std::string&)>& member) {
  try {
    read_members(s, path, id, key, member);
  } catch (const crypto::esdk::FormatError& e) {
    if (e.fault() != crypto::esdk::Fault::no_matching_key &&
        e.fault() != crypto::esdk::Fault::wrong_key) {
      throw;
    }
    throw KeyMismatch(
        "the private key does not fit archive " + id + " (" +
            (e.fault() == crypto::esdk::Fault::no_matching_key
                 ? "no data key is wrapped for " + s.archive.key_namespace + "/" +
                       s.archive.key_name
                 : "it does not unwrap the data key") +
            "); the file itself was not found damaged; it was written to " + written_to(db, id),
        "pass --private-key with the private half of one of those public keys (and the "
        "archive.key_namespace/key_name it was written with)");
  }
}

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& i : items) {
    out += (out.size() > 1 ? "," : "");
    util::append_json_string(out, i);
  }
  return out + "]";
}

// COPYs one CSV member into `target`; a member that does not fit its table is bad data.
long long load_member(db::Transaction& tx, const std::string& id, const std::string& name,
                      const std::string& target, const std::string& data) {
  bool header = name.ends_with("/part-00001.csv");
  bool sent = false;
  try {
    return static_cast<long long>(tx.copy_in_data("COPY " + target +
                                                      " FROM STDIN WITH (FORMAT csv, HEADER " +
                                                      (header ? "true" : "false") + ")",
                                                  [&](std::string& chunk) {
                                                    if (!sent) {
                                                      chunk = data;
                                                      sent = true;
                                                    }
                                                    return false;
                                                  }));
  } catch (const db::DbError& e) {
    if (e.sqlstate().empty() || e.sqlstate().starts_with("08")) {
      throw; // the connection, not the data
    }
    // The server's text may quote the row: only the SQLSTATE is shown.
    throw Error(Exit::data,
                "archive " + id + " has member " + name +
                    " that does not match its table (SQLSTATE " + e.sqlstate() +
                    "); nothing was restored",
                "the archive is not what lethe writes: restore it --into a directory to inspect "
                "it, and keep it for the incident record (C18)");
  }
}

// ---- restore ------------------------------------------------------------------------------

// One restore in progress.
struct Restore {
  Context& ctx;
  const RestoreOptions& opt;
  const Cataloged& a;
  const crypto::RsaKey& key;
  std::map<std::string, MemberFacts> expected; // from the verified manifest
  std::string tables;                          // tables.json as verified
  long long members = 0;
  long long rows = 0;
};

[[noreturn]] void refuse_contents(const std::string& id, const std::string& what) {
  throw Error(Exit::data, "archive " + id + " " + what + "; nothing was restored",
              "do not use this file: fetch the archive's other copy, and keep this one for the "
              "incident record (C18)");
}

MemberFacts facts_of(const std::string& data) {
  CsvCounter rows;
  rows.feed(data);
  return {crypto::hex(crypto::sha256(data)), rows.lines};
}

// Reads the whole archive once and checks it against its manifest before anything is written
// or loaded: every member named by the manifest, with its SHA-256 and row count, no member the
// manifest does not name, tables.json equal to the manifest's tables. Returns the manifest's
// facts by member name (row counts with the header line of part-00001); sets `tables`.
std::map<std::string, MemberFacts> verify_contents(db::Session& s, const settings::Settings& st,
                                                   const Cataloged& a, const crypto::RsaKey& key,
                                                   std::string& tables) {
  std::map<std::string, MemberFacts> seen;
  std::string manifest;
  bool have_tables = false;
  read_archive(s, st, a.path, a.id, key, [&](const std::string& name, const std::string& data) {
    if (util::stop_requested()) {
      throw Error(Exit::temporary, "archive restore interrupted by a stop signal",
                  "nothing was restored; run it again");
    }
    if (seen.contains(name) || (name == "tables.json" && have_tables) ||
        (name == "manifest.json" && !manifest.empty())) {
      refuse_contents(a.id, "holds member " + name + " twice");
    }
    if (name == "manifest.json") {
      manifest = data;
    } else if (name == "tables.json") {
      tables = data;
      have_tables = true;
    } else {
      seen[name] = facts_of(data);
    }
  });
  if (manifest.empty() || !have_tables) {
    refuse_contents(a.id, manifest.empty() ? "has no manifest" : "has no tables.json");
  }
  db::Rows m;
  bool tables_match = false;
  try {
    // coalesce: a crafted manifest may leave any field out.
    m = s.exec("SELECT coalesce(x->>'name', ''), coalesce(x->>'sha256', ''), "
               "coalesce((x->>'rows')::bigint, -1), coalesce((x->>'name') LIKE "
               "'%/part-00001.csv', false) FROM jsonb_array_elements($1::jsonb->'members') x",
               {manifest});
    tables_match =
        s.exec("SELECT coalesce($1::jsonb->'tables' = $2::jsonb, false)", {manifest, tables})
            .text(0, 0) == "t";
  } catch (const db::DbError&) {
    refuse_contents(a.id, "has a manifest or tables.json that is not what lethe writes");
  }
  if (!tables_match) {
    refuse_contents(a.id, "has a tables.json that differs from its manifest");
  }
  std::map<std::string, MemberFacts> expected;
  for (size_t r = 0; r < m.size(); ++r) {
    std::string name = m.text(r, 0);
    MemberFacts want{m.text(r, 1), m.integer(r, 2) + (m.text(r, 3) == "t" ? 1 : 0)};
    auto it = seen.find(name);
    if (it == seen.end()) {
      refuse_contents(a.id, "lacks member " + name + " that its manifest names");
    }
    if (it->second.sha256 != want.sha256 || it->second.rows != want.rows) {
      refuse_contents(a.id, "has member " + name + " that differs from its manifest");
    }
    expected[name] = want;
  }
  for (const auto& [name, facts] : seen) {
    if (!expected.contains(name)) {
      refuse_contents(a.id, "has member " + name + " that its manifest does not name");
    }
  }
  return expected;
}

bool member_as_verified(const Restore& r, const std::string& name, const std::string& data) {
  if (name == "manifest.json") {
    return true; // its members are checked one by one
  }
  if (name == "tables.json") {
    return data == r.tables;
  }
  auto it = r.expected.find(name);
  if (it == r.expected.end()) {
    return false;
  }
  MemberFacts f = facts_of(data);
  return f.sha256 == it->second.sha256 && f.rows == it->second.rows;
}

// Reads the archive again for restoring: `use` gets each member only after it matched what
// verify_contents found (the file could change between the two reads).
void read_verified(Restore& r,
                   const std::function<void(const std::string&, const std::string&)>& use) {
  read_archive(r.ctx.ready_db(), r.ctx.settings(), r.a.path, r.a.id, r.key,
               [&](const std::string& name, const std::string& data) {
                 if (util::stop_requested()) {
                   throw Error(Exit::temporary, "archive restore interrupted by a stop signal",
                               "nothing was restored; run it again");
                 }
                 if (!member_as_verified(r, name, data)) {
                   refuse_contents(r.a.id, "changed while it was being restored");
                 }
                 ++r.members;
                 use(name, data);
               });
}

// The top-level names a restore into a directory creates: the two JSON members and one
// directory per table.
std::vector<std::string> top_level_names(const Restore& r) {
  std::vector<std::string> out = {"tables.json", "manifest.json"};
  for (const auto& [name, facts] : r.expected) {
    std::string dir = name.substr(0, name.rfind('/'));
    if (std::find(out.begin(), out.end(), dir) == out.end()) {
      out.push_back(dir);
    }
  }
  return out;
}

// Writes the members into a private (0700) directory inside --into and moves them into place
// only once all were written; on any failure, nothing decrypted is left behind.
void restore_to_directory(Restore& r) {
  std::filesystem::path dest(r.opt.into_dir);
  if (!util::is_directory(dest)) {
    util::create_directories(dest);
    ::chmod(dest.c_str(), 0700);
  }
  std::vector<std::string> names = top_level_names(r);
  for (const std::string& n : names) {
    if (util::exists(dest / n)) {
      throw Error(Exit::cant_create, "--into " + dest.string() + " already holds " + n,
                  "restore into an empty or new directory");
    }
  }
  std::filesystem::path stage = util::make_private_directory(dest, ".lethe-restore-");
  std::vector<std::filesystem::path> moved;
  try {
    read_verified(r, [&](const std::string& name, const std::string& data) {
      std::filesystem::path out = stage / name;
      if (!util::is_directory(out.parent_path())) {
        util::create_directories(out.parent_path());
        ::chmod(out.parent_path().c_str(), 0700);
      }
      util::PendingFile f(out, 0600);
      f.write(data.data(), data.size());
      f.commit();
    });
    for (const std::string& n : names) {
      if (util::exists(stage / n)) {
        util::rename(stage / n, dest / n);
        moved.push_back(dest / n);
      }
    }
  } catch (...) {
    for (const std::filesystem::path& p : moved) {
      util::remove_all_quietly(p);
    }
    util::remove_all_quietly(stage);
    throw;
  }
  util::remove_all_quietly(stage);
}

// Checks tables.json's column types and creates the tables in the new schema; returns the
// restored table name of each archived table.
std::map<std::string, std::string> create_tables(Restore& r, db::Transaction& tx) {
  const std::string& id = r.a.id;
  // Column types come from the archive, which anyone with the public key can write: only plain
  // type names this server knows (and no pseudo-types) pass.
  long long bad = 0;
  try {
    bad = tx.exec("SELECT count(*) FROM jsonb_array_elements($1::jsonb) t, "
                  "jsonb_array_elements(t->'columns') c WHERE CASE WHEN NOT (c->>'type') ~ "
                  "'^[A-Za-z0-9_ ,()\\[\\].]+$' THEN true ELSE coalesce((SELECT typtype = 'p' "
                  "FROM pg_type WHERE oid = to_regtype(c->>'type')), true) END",
                  {r.tables})
              .integer(0, 0);
  } catch (const db::DbError&) {
    bad = 1; // to_regtype refuses what does not parse as a type name
  }
  if (bad > 0) {
    throw Error(Exit::data, "archive " + id + " records a column type this server does not know",
                "the archive is not what lethe writes: restore it --into a directory to inspect "
                "it, and keep it for the incident record (C18)");
  }
  std::map<std::string, std::string> target;
  try {
    db::Rows cols = tx.exec("SELECT t->>'table', string_agg(format('%I %s', c->>'name', "
                            "c->>'type'), ', ' ORDER BY n) FROM jsonb_array_elements($1::jsonb) "
                            "t, jsonb_array_elements(t->'columns') WITH ORDINALITY AS x(c, n) "
                            "GROUP BY t->>'table'",
                            {r.tables});
    for (size_t i = 0; i < cols.size(); ++i) {
      std::string table = cols.text(i, 0);
      std::string local = table;
      std::replace(local.begin(), local.end(), '.', '_');
      target[table] = db::quote_ident(r.opt.into_schema) + "." + db::quote_ident(local);
      tx.exec("CREATE TABLE " + target[table] + " (" + cols.text(i, 1) + ")");
    }
  } catch (const db::DbError& e) {
    if (e.sqlstate().empty() || e.sqlstate().starts_with("08")) {
      throw; // the connection, not the data
    }
    throw Error(Exit::data,
                "archive " + id + " describes tables this server cannot create (SQLSTATE " +
                    e.sqlstate() + ")",
                "the archive is not what lethe writes: restore it --into a directory to inspect "
                "it");
  }
  return target;
}

// Loads the archive into a new schema in one transaction: nothing is committed unless every
// member was verified and loaded.
void restore_to_schema(Restore& r) {
  r.ctx.ready_db().transact([&](db::Transaction& tx) {
    try {
      tx.exec("CREATE SCHEMA " + db::quote_ident(r.opt.into_schema));
    } catch (const db::DbError& e) {
      if (e.sqlstate() != "42P06") {
        throw;
      }
      throw Error(Exit::cant_create, "schema " + r.opt.into_schema + " already exists",
                  "choose another --into-db name, or drop it first (DROP SCHEMA " +
                      r.opt.into_schema + " CASCADE) if it holds an old restore");
    }
    std::map<std::string, std::string> target = create_tables(r, tx);
    read_verified(r, [&](const std::string& name, const std::string& data) {
      auto slash = name.rfind('/');
      if (slash == std::string::npos) {
        return; // tables.json, manifest.json
      }
      std::string table = name.substr(0, slash);
      if (!target.contains(table)) {
        refuse_contents(r.a.id, "has member " + name + " for no table in its tables.json");
      }
      r.rows += load_member(tx, r.a.id, name, target[table], data);
    });
  });
}

audit::Record restore_record(const RestoreOptions& opt, const std::string& archive_id,
                             long long members, long long rows, const std::string& outcome,
                             const std::string& exit_reason) {
  return audit::Record{audit::Kind::manual,
                       "archive restore",
                       outcome,
                       exit_reason,
                       std::nullopt,
                       util::JsonObject().add("members", members).add("rows", rows).str(),
                       util::JsonObject()
                           .add("archive_id", archive_id)
                           .add("reason", opt.reason)
                           .add("into", opt.into_dir.empty() ? "schema " + opt.into_schema
                                                             : "directory " + opt.into_dir)
                           .str()};
}

audit::Record restore_record(const Restore& r, const std::string& outcome,
                             const std::string& exit_reason) {
  return restore_record(r.opt, r.a.id, r.members, r.rows, outcome, exit_reason);
}

// What is wrong with the orders the catalog releases from their hold: an archive whose
// archived_orders do not number its `orders`, or that has no evidence, and archived_orders rows
// naming an archive that is not cataloged with its evidence (the held test ignores those, but
// someone wrote them outside lethe.archive_orders). Names archives and counts, never an order.
std::vector<std::string> archived_orders_problems(db::Session& s) {
  std::vector<std::string> out;
  db::Rows r = s.exec("SELECT a.archive_id, a.orders, count(o.order_key), a.evidence_seq IS NULL "
                      "FROM lethe.archives a LEFT JOIN lethe.archived_orders o ON o.archive_id = "
                      "a.archive_id GROUP BY a.archive_id HAVING count(o.order_key) <> a.orders "
                      "OR a.evidence_seq IS NULL ORDER BY 1");
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(r.text(i, 0) + (r.text(i, 3) == "t"
                                      ? ": the catalog row names no evidence"
                                      : ": the catalog says " + r.text(i, 1) +
                                            " orders, archived_orders lists " + r.text(i, 2)));
  }
  r = s.exec("SELECT o.archive_id, count(*) FROM lethe.archived_orders o WHERE NOT EXISTS "
             "(SELECT 1 FROM lethe.archives a WHERE a.archive_id = o.archive_id AND "
             "a.evidence_seq IS NOT NULL) GROUP BY 1 ORDER BY 1");
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(r.text(i, 0) + ": " + r.text(i, 1) +
                  " archived_orders row(s) name an archive not cataloged with its evidence");
  }
  return out;
}

} // namespace

int run_verify(Context& ctx, const VerifyOptions& opt) {
  db::Session& s = ctx.ready_db();
  std::vector<Cataloged> all = catalog(s);
  std::optional<crypto::RsaKey> key;
  if (opt.read_data) {
    if (opt.private_key.empty()) {
      throw Error(Exit::usage, "--read-data needs --private-key", "pass the archive private key");
    }
    key = crypto::load_private_key(opt.private_key);
  }
  auto started = std::chrono::steady_clock::now();
  long long checked = 0;
  long long cold = 0;
  long long not_reached = 0;
  std::vector<std::string> problems = archived_orders_problems(s);
  size_t key_mismatches = 0; // problems that are the key's, not the files'
  for (size_t i = 0; i < all.size(); ++i) {
    const Cataloged& a = all[i];
    if (opt.subset_count > 0 &&
        static_cast<int>(i % static_cast<size_t>(opt.subset_count)) != opt.subset_index - 1) {
      continue;
    }
    double spent =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (opt.max_duration_s > 0 && spent > static_cast<double>(opt.max_duration_s)) {
      ++not_reached;
      continue;
    }
    // The catalog is checked against the audit chain, not only against itself: its length,
    // SHA-256 and state must be what the audit records say.
    std::string problem =
        evidence_problem(s, facts_of(a), a.state == "spooled" ? ReadFile::yes : ReadFile::no);
    if (!problem.empty()) {
      problems.push_back(problem);
      continue;
    }
    if (a.state != "spooled") {
      cold += a.state == "cold" ? 1 : 0;
      continue;
    }
    if (key) {
      std::map<std::string, MemberFacts> seen;
      std::string manifest;
      try {
        read_archive(s, ctx.settings(), a.path, a.id, *key,
                     [&](const std::string& name, const std::string& data) {
                       if (name == "manifest.json") {
                         manifest = data;
                         return;
                       }
                       CsvCounter rows;
                       rows.feed(data);
                       seen[name] = {crypto::hex(crypto::sha256(data)), rows.lines};
                     });
      } catch (const KeyMismatch& e) {
        problems.push_back(a.id + ": " + e.what());
        ++key_mismatches;
        continue;
      } catch (const Error& e) {
        problems.push_back(a.id + ": " + e.what());
        continue;
      }
      db::Rows m = s.exec("SELECT x->>'name', x->>'sha256', (x->>'rows')::bigint, "
                          "(x->>'name') LIKE '%/part-00001.csv' FROM "
                          "jsonb_array_elements($1::jsonb->'members') x",
                          {manifest.empty() ? std::string("{}") : manifest});
      if (manifest.empty() || m.empty()) {
        problems.push_back(a.id + ": no manifest");
        continue;
      }
      for (size_t r = 0; r < m.size(); ++r) {
        auto it = seen.find(m.text(r, 0));
        long long header = m.text(r, 3) == "t" ? 1 : 0;
        if (it == seen.end()) {
          problems.push_back(a.id + ": member " + m.text(r, 0) + " is missing");
        } else if (it->second.sha256 != m.text(r, 1) ||
                   it->second.rows - header != m.integer(r, 2)) {
          problems.push_back(a.id + ": member " + m.text(r, 0) + " differs from the manifest");
        }
      }
    }
    s.exec("UPDATE lethe.archives SET last_seen_at = now() WHERE archive_id = $1", {a.id});
    ++checked;
  }
  std::string counts = util::JsonObject()
                           .add("checked", checked)
                           .add("cold", cold)
                           .add("not_reached", not_reached)
                           .add("problems", static_cast<long>(problems.size()))
                           .add("read_data", opt.read_data)
                           .str();
  ctx.record(audit::Record{problems.empty() ? audit::Kind::run : audit::Kind::alarm,
                           "archive verify", problems.empty() ? "done" : "failed",
                           problems.empty()                    ? "verified"
                           : key_mismatches == problems.size() ? "key_mismatch"
                                                               : "archive_damaged",
                           std::nullopt, counts,
                           util::JsonObject().add_raw("problems", json_list(problems)).str()});
  if (opt.json) {
    std::cout << util::JsonObject()
                     .add("ok", problems.empty())
                     .add("checked", checked)
                     .add("cold", cold)
                     .add("not_reached", not_reached)
                     .add_raw("problems", json_list(problems))
                     .str()
              << "\n";
  } else {
    std::cout << "archives verified: " << checked << (opt.read_data ? " (contents read)" : "")
              << ", in cold storage: " << cold
              << ", not reached in the time budget: " << not_reached << "\n";
    for (const std::string& p : problems) {
      std::cout << "  problem: " << p << "\n";
    }
  }
  if (!problems.empty() && key_mismatches == problems.size()) {
    throw Error(Exit::data,
                "the private key does not fit " + std::to_string(problems.size()) +
                    " archive(s); their files were not found damaged",
                "pass --private-key with the private half of the public key each problem line "
                "names");
  }
  if (!problems.empty()) {
    throw Error(Exit::data, std::to_string(problems.size()) + " archive(s) failed verification",
                "restore the damaged file from its other copy, or re-archive before the live PII "
                "is gone; see `lethe archive list`");
  }
  return 0;
}

int run_restore(Context& ctx, const RestoreOptions& opt) {
  if (opt.reason.empty()) {
    throw Error(Exit::usage, "--reason is required", "say why, e.g. --reason 'tax audit 2027-03'");
  }
  if (opt.into_dir.empty() == opt.into_schema.empty()) {
    throw Error(Exit::usage, "give exactly one of --into DIR and --into-db SCHEMA",
                "--into writes files, --into-db loads a scratch schema");
  }
  if (!opt.into_schema.empty() &&
      opt.into_schema.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") !=
          std::string::npos) {
    throw Error(Exit::usage, "--into-db takes a plain lower-case schema name",
                "e.g. --into-db restore_tax_2027");
  }
  db::Session& s = ctx.ready_db();
  Cataloged a = find_archive(s, opt.archive_id);
  // Anyone with the public key can write a valid message: before decrypting, the file must be
  // the one the catalog and the audit chain recorded.
  // A restore refused before it read anything is audited as failed too, with who asked and why.
  auto refused = [&](const Error& e) {
    ctx.record(restore_record(opt, a.id, 0, 0, "failed", exit_name(e.code())));
  };
  if (std::string problem = evidence_problem(s, facts_of(a), ReadFile::yes); !problem.empty()) {
    Error e(Exit::data, "archive " + problem,
            "do not restore it: keep the file for the "
            "incident record and fetch the archive's recorded copy from cold storage");
    refused(e);
    throw e;
  }
  std::optional<crypto::RsaKey> key;
  try {
    key.emplace(crypto::load_private_key(opt.private_key));
  } catch (const Error& e) {
    refused(e);
    throw;
  }
  Restore r{ctx, opt, a, *key, {}, {}, 0, 0};
  try {
    util::install_stop_handlers();
    r.expected = verify_contents(s, ctx.settings(), a, *key, r.tables);
    if (opt.into_dir.empty()) {
      restore_to_schema(r);
    } else {
      restore_to_directory(r);
    }
  } catch (const Error& e) {
    ctx.record(restore_record(r, "failed", exit_name(e.code())));
    throw;
  } catch (const std::exception&) {
    ctx.record(restore_record(r, "failed", exit_name(Exit::internal)));
    throw;
  }
  ctx.record(restore_record(r, "done", "restored"));
  std::cout << "restored archive " << a.id << ": " << r.members << " members"
            << (opt.into_dir.empty()
                    ? ", " + std::to_string(r.rows) + " rows into schema " + opt.into_schema
                    : " into " + opt.into_dir)
            << "\n";
  return 0;
}

int run_list(Context& ctx, bool json) {
  for (const Cataloged& a : catalog(ctx.ready_db())) {
    if (json) {
      std::cout << util::JsonObject()
                       .add("archive_id", a.id)
                       .add("created_at", a.created_at)
                       .add("state", a.state)
                       .add("orders", a.orders)
                       .add("size_bytes", static_cast<long long>(a.size))
                       .add("sha256", a.sha256)
                       .add("retention_until", a.retention_until)
                       .add("path", a.path)
                       .add("destroyed_by", a.destroyed_by)
                       .add("destroyed_by_role", a.destroyed_by_role)
                       .str()
                << "\n";
    } else {
      std::string by = a.state == "destroyed" ? "  destroyed by " + a.destroyed_by + " (role " +
                                                    a.destroyed_by_role + ")"
                                              : std::string();
      std::printf("%-28s %-20s %-9s %8lld orders %12llu bytes  until %s%s\n", a.id.c_str(),
                  a.created_at.c_str(), a.state.c_str(), a.orders, a.size,
                  a.retention_until.c_str(), by.c_str());
    }
  }
  return 0;
}

namespace {

// Records archive `a`'s move to `state` with its audit record `r` in one transaction (the
// definer function lethe.archive_set_state refuses a move without it), then anchors the record.
void change_state(Context& ctx, const Cataloged& a, const std::string& state,
                  const audit::Record& r) {
  audit::Stored stored;
  ctx.ready_db().transact([&](db::Transaction& tx) {
    stored = ctx.trail().append_in(tx, r);
    tx.exec("SELECT lethe.archive_set_state($1, $2, $3::bigint)",
            {a.id, state, std::to_string(stored.seq)});
  });
  ctx.trail().anchor(stored);
}

// Overwrites, unlinks and fsyncs away the file at `path` (the vault's destroy).
void destroy_file(const std::string& path) {
  vault::destroy(path, "archive file",
                 "fix the cause and run `lethe archive expire` again; the catalog still lists the "
                 "archive. If the file is gone already, confirm it with `lethe archive "
                 "mark-destroyed ID --operator NAME`");
}

// Destroys spooled archive `a` and records it in one transaction: the audit record and the
// state change first (so a refusal, e.g. a missing grant or retention not yet over, leaves the
// file untouched), then the file, then the commit. A destroy that fails rolls the record back;
// a commit that fails after the file is gone is spooled as an alarm and thrown.
void expire_one(Context& ctx, const Cataloged& a) {
  audit::Record rec{audit::Kind::run,
                    "archive expire",
                    "done",
                    "destroyed",
                    std::nullopt,
                    util::JsonObject().add("bytes", static_cast<long long>(a.size)).str(),
                    util::JsonObject()
                        .add("archive_id", a.id)
                        .add("from", a.state)
                        .add("retention_until", a.retention_until)
                        .str()};
  audit::Stored stored;
  bool file_gone = false;
  try {
    ctx.ready_db().transact([&](db::Transaction& tx) {
      stored = ctx.trail().append_in(tx, rec);
      try {
        tx.exec("SELECT lethe.archive_set_state($1, $2, $3::bigint)",
                {a.id, "destroyed", std::to_string(stored.seq)});
      } catch (const db::DbError& e) {
        throw Error(e.sqlstate() == "42501" ? Exit::permission : e.code(),
                    "the database refused to record archive " + a.id + " destroyed (SQLSTATE " +
                        e.sqlstate() + "); its file was not touched",
                    "lethe_archive needs EXECUTE on lethe.archive_set_state (apply `lethe "
                    "grants` as the owner), and the archive's retention must have ended by the "
                    "server's date; then run `lethe archive expire` again");
      }
      destroy_file(a.path);
      file_gone = true;
    });
  } catch (const Error& e) {
    if (!file_gone) {
      throw;
    }
    ctx.trail().spool(audit::Record{audit::Kind::alarm, "archive expire", "failed",
                                    "destroyed_not_recorded", std::nullopt, "{}",
                                    util::JsonObject().add("archive_id", a.id).str()});
    throw Error(Exit::temporary,
                "archive " + a.id +
                    " was destroyed, but its destruction could not be recorded: " + e.what(),
                "the alarm is spooled for the audit trail; when the database is back, confirm "
                "the destruction with the DBA and keep this output for the incident record; "
                "`lethe archive verify` will name the archive as missing until it is recorded");
  }
  ctx.trail().anchor(stored);
}

} // namespace

int run_expire(Context& ctx, const std::string& as_of) {
  db::Session& s = ctx.ready_db();
  // The server's clock decides when a retention ends: --as-of may only look earlier.
  if (!as_of.empty() &&
      s.exec("SELECT ($1::timestamptz AT TIME ZONE 'UTC')::date > current_date", {as_of})
              .text(0, 0) == "t") {
    throw Error(Exit::usage, "archive expire --as-of " + as_of + " is after the database's date",
                "archives are destroyed only after their retention ends by the server's clock; "
                "leave --as-of out");
  }
  std::vector<Cataloged> due =
      catalog(s,
              "state <> 'destroyed' AND retention_until < least((coalesce($1::timestamptz, now()) "
              "AT TIME ZONE 'UTC')::date, current_date)",
              {as_of.empty() ? db::Value{} : db::Value{as_of}});
  long long destroyed = 0;
  long long in_cold = 0;
  std::vector<Error> failed;
  for (const Cataloged& a : due) {
    if (a.state == "cold") {
      ++in_cold;
      ctx.record(audit::Record{audit::Kind::alarm, "archive expire", "action_needed",
                               "destroy_in_cold_storage", std::nullopt, "{}",
                               util::JsonObject()
                                   .add("archive_id", a.id)
                                   .add("retention_until", a.retention_until)
                                   .str()});
      std::cout << "archive " << a.id << " is past its retention (" << a.retention_until
                << ") and in cold storage: destroy it there, then run `lethe archive "
                   "mark-destroyed "
                << a.id << "`\n";
      continue;
    }
    try {
      expire_one(ctx, a);
    } catch (const Error& e) {
      if (e.code() != Exit::io && e.code() != Exit::permission) {
        throw; // destroyed and not recorded, or the database is gone: stop here
      }
      // Nothing is recorded as destroyed: the catalog keeps the archive as it was.
      ctx.record(audit::Record{audit::Kind::alarm, "archive expire", "failed", "destroy_failed",
                               std::nullopt, "{}",
                               util::JsonObject().add("archive_id", a.id).str()});
      std::cout << "archive " << a.id << " NOT destroyed: " << e.what() << "\n";
      failed.push_back(e);
      continue;
    }
    ++destroyed;
    std::cout << "archive " << a.id << " destroyed (retention until " << a.retention_until << ")\n";
  }
  std::cout << "expired: " << destroyed << " destroyed, " << in_cold
            << " in cold storage awaiting the operator, " << failed.size() << " failed\n";
  if (failed.size() == 1) {
    throw failed.front();
  }
  if (!failed.empty()) {
    throw Error(Exit::io, std::to_string(failed.size()) + " archives could not be destroyed",
                "see the reason printed for each; fix it and run `lethe archive expire` again");
  }
  return 0;
}

int run_mark(Context& ctx, const std::string& archive_id, const std::string& state) {
  db::Session& s = ctx.ready_db();
  Cataloged a = find_archive(s, archive_id);
  if (a.state == "destroyed") {
    throw Error(Exit::data, "archive " + a.id + " is already destroyed", "nothing to mark");
  }
  if (a.state == state) {
    throw Error(Exit::data, "archive " + a.id + " is already " + state, "nothing to mark");
  }
  if (state == "destroyed" && a.state != "cold") {
    throw Error(Exit::data,
                "archive " + a.id + " is " + a.state +
                    ": mark-destroyed confirms only an archive destroyed in cold storage",
                "a spooled archive is destroyed by `lethe archive expire` once its retention "
                "ends; if it was moved to cold storage, record that first with `lethe archive "
                "mark-cold " +
                    a.id + "`");
  }
  if (state == "destroyed" &&
      s.exec("SELECT retention_until >= current_date FROM lethe.archives WHERE archive_id = $1",
             {a.id})
              .text(0, 0) == "t") {
    throw Error(Exit::data,
                "archive " + a.id + " is retained until " + a.retention_until +
                    " by the database's date; it cannot be recorded destroyed before",
                "if it really was destroyed early, that is an incident (C18): report it; the "
                "catalog keeps the archive");
  }
  change_state(
      ctx, a, state,
      audit::Record{audit::Kind::manual, "archive mark", "done", state, std::nullopt, "{}",
                    util::JsonObject().add("archive_id", a.id).add("from", a.state).str()});
  std::cout << "archive " << a.id << ": " << a.state << " -> " << state << "\n";
  return 0;
}

} // namespace lethe::jobs::archive
