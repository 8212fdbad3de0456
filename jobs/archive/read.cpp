// Reading archives back: verify (with or without the key), restore, list, expire, mark.
#include "jobs/archive/archive.hpp"
#include "jobs/archive/common.hpp"
#include "worker/archive/tar.hpp"
#include "worker/audit/runs.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/log/log.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <map>
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
};

std::vector<Cataloged> catalog(db::Session& s, const std::string& where = "true",
                               const db::Params& params = {}) {
  db::Rows r =
      s.exec("SELECT archive_id, path, size_bytes, sha256, state, retention_until::text, "
             "orders, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
             "FROM lethe.archives WHERE " +
                 where + " ORDER BY archive_id",
             params);
  std::vector<Cataloged> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.text(i, 0), r.text(i, 1), std::stoull(r.text(i, 2)), r.text(i, 3),
                   r.text(i, 4), r.text(i, 5), r.integer(i, 6), r.text(i, 7)});
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

struct MemberFacts {
  std::string sha256;
  long long rows = 0;
};

// Decrypts archive file `path` with `key` and walks its members: `member(name, data)` gets each
// member whole (members are bounded by archive.member_mib). Checks the encryption context names
// archive `id`.
void read_archive(const settings::Settings& s, const std::string& path, const std::string& id,
                  const crypto::RsaKey& key,
                  const std::function<void(const std::string&, const std::string&)>& member) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(Exit::io, "cannot open archive file " + path,
                "fetch it back from cold storage to this path first");
  }
  crypto::esdk::DecryptParams params;
  params.keys.push_back({s.archive_key_namespace, s.archive_key_name, &key});
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

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& i : items) {
    out += (out.size() > 1 ? "," : "");
    util::append_json_string(out, i);
  }
  return out + "]";
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
  std::vector<std::string> problems;
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
        read_archive(ctx.settings(), a.path, a.id, *key,
                     [&](const std::string& name, const std::string& data) {
                       if (name == "manifest.json") {
                         manifest = data;
                         return;
                       }
                       CsvCounter rows;
                       rows.feed(data);
                       seen[name] = {crypto::hex(crypto::sha256(data)), rows.lines};
                     });
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
                           problems.empty() ? "verified" : "archive_damaged", std::nullopt, counts,
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
  if (std::string problem = evidence_problem(s, facts_of(a), ReadFile::yes); !problem.empty()) {
    throw Error(Exit::data, "archive " + problem,
                "do not restore it: keep the file for the "
                "incident record and fetch the archive's recorded copy from cold storage");
  }
  crypto::RsaKey key = crypto::load_private_key(opt.private_key);
  long long members = 0;
  long long rows = 0;
  auto restore = [&](db::Transaction* tx) {
    std::map<std::string, std::string> target; // table -> restored table name
    read_archive(
        ctx.settings(), a.path, a.id, key, [&](const std::string& name, const std::string& data) {
          ++members;
          if (!opt.into_dir.empty()) {
            std::filesystem::path out = std::filesystem::path(opt.into_dir) / name;
            std::filesystem::create_directories(out.parent_path());
            ::chmod(out.parent_path().c_str(), 0700);
            util::PendingFile f(out, 0600);
            f.write(data.data(), data.size());
            f.commit();
            return;
          }
          if (name == "tables.json") {
            // Column types come from the archive, which anyone with the public key can write:
            // only plain type names this server knows pass.
            db::Rows bad =
                tx->exec("SELECT count(*) FROM jsonb_array_elements($1::jsonb) t, "
                         "jsonb_array_elements(t->'columns') c WHERE NOT (c->>'type') ~ "
                         "'^[A-Za-z0-9_ ,()\\[\\].]+$' OR to_regtype(c->>'type') IS NULL",
                         {data});
            if (bad.integer(0, 0) > 0) {
              throw Error(Exit::data,
                          "archive " + a.id + " records a column type this server does not know",
                          "restore it --into a directory instead");
            }
            db::Rows cols = tx->exec("SELECT t->>'table', string_agg(format('%I %s', c->>'name', "
                                     "c->>'type'), ', ' ORDER BY "
                                     "n) FROM jsonb_array_elements($1::jsonb) t, "
                                     "jsonb_array_elements(t->'columns') WITH "
                                     "ORDINALITY AS x(c, n) GROUP BY t->>'table'",
                                     {data});
            for (size_t i = 0; i < cols.size(); ++i) {
              std::string table = cols.text(i, 0);
              std::string local = table;
              for (char& c : local) {
                c = c == '.' ? '_' : c;
              }
              target[table] = db::quote_ident(opt.into_schema) + "." + db::quote_ident(local);
              tx->exec("CREATE TABLE " + target[table] + " (" + cols.text(i, 1) + ")");
            }
            return;
          }
          auto slash = name.rfind('/');
          if (slash == std::string::npos) {
            return; // manifest.json
          }
          std::string table = name.substr(0, slash);
          if (!target.contains(table)) {
            throw Error(Exit::data, "archive " + a.id + " has member " + name + " for no table",
                        "the archive is damaged");
          }
          bool header = name.ends_with("/part-00001.csv");
          bool sent = false;
          rows += static_cast<long long>(
              tx->copy_in_data("COPY " + target[table] + " FROM STDIN WITH (FORMAT csv, HEADER " +
                                   (header ? "true" : "false") + ")",
                               [&](std::string& chunk) {
                                 if (!sent) {
                                   chunk = data;
                                   sent = true;
                                 }
                                 return false;
                               }));
        });
  };
  if (opt.into_dir.empty()) {
    s.transact([&](db::Transaction& tx) {
      tx.exec("CREATE SCHEMA " + db::quote_ident(opt.into_schema));
      restore(&tx);
    });
  } else {
    std::filesystem::create_directories(opt.into_dir);
    ::chmod(opt.into_dir.c_str(), 0700);
    restore(nullptr);
  }
  ctx.record(audit::Record{audit::Kind::manual, "archive restore", "done", "restored", std::nullopt,
                           util::JsonObject().add("members", members).add("rows", rows).str(),
                           util::JsonObject()
                               .add("archive_id", a.id)
                               .add("reason", opt.reason)
                               .add("into", opt.into_dir.empty() ? "schema " + opt.into_schema
                                                                 : "directory " + opt.into_dir)
                               .str()});
  std::cout << "restored archive " << a.id << ": " << members << " members"
            << (opt.into_dir.empty()
                    ? ", " + std::to_string(rows) + " rows into schema " + opt.into_schema
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
                       .str()
                << "\n";
    } else {
      std::printf("%-28s %-20s %-9s %8lld orders %12llu bytes  until %s\n", a.id.c_str(),
                  a.created_at.c_str(), a.state.c_str(), a.orders, a.size,
                  a.retention_until.c_str());
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

Error destroy_error(const std::string& path, const char* step, int err) {
  return Error(Exit::io,
               "cannot destroy archive file " + path + ": " + step + ": " + std::strerror(err),
               "fix the cause and run `lethe archive expire` again; the catalog still lists the "
               "archive. If the file is gone already, confirm it with `lethe archive "
               "mark-destroyed ID --operator NAME`");
}

// Overwrites the file at `path` with zeros (so its blocks do not keep the ciphertext), fsyncs
// it, unlinks it and fsyncs its directory; throws at the first step that fails.
void destroy_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    throw destroy_error(path, "open", errno);
  }
  auto fail = [&](const char* step, int err) {
    ::close(fd);
    return destroy_error(path, step, err);
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw fail("stat", errno);
  }
  if (!S_ISREG(st.st_mode)) {
    throw fail("not a regular file", EINVAL);
  }
  std::vector<char> zeros(1 << 20, 0);
  auto left = static_cast<unsigned long long>(st.st_size);
  while (left > 0) {
    size_t n = static_cast<size_t>(std::min<unsigned long long>(left, zeros.size()));
    ssize_t w = ::write(fd, zeros.data(), n);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      throw fail("overwrite", w < 0 ? errno : EIO);
    }
    left -= static_cast<unsigned long long>(w);
  }
  if (::fsync(fd) != 0) {
    throw fail("fsync", errno);
  }
  if (::close(fd) != 0) {
    throw destroy_error(path, "close", errno);
  }
  if (::unlink(path.c_str()) != 0) {
    throw destroy_error(path, "unlink", errno);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    throw destroy_error(path, "open its directory", errno);
  }
  int synced = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (synced != 0) {
    throw destroy_error(path, "fsync its directory", err);
  }
}

} // namespace

int run_expire(Context& ctx, const std::string& as_of) {
  db::Session& s = ctx.ready_db();
  std::vector<Cataloged> due =
      catalog(s,
              "state <> 'destroyed' AND retention_until < (coalesce($1::timestamptz, now()) AT "
              "TIME ZONE 'UTC')::date",
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
      destroy_file(a.path);
    } catch (const Error& e) {
      // Nothing is recorded as destroyed: the catalog keeps the archive as it was.
      ctx.record(audit::Record{audit::Kind::alarm, "archive expire", "failed", "destroy_failed",
                               std::nullopt, "{}",
                               util::JsonObject().add("archive_id", a.id).str()});
      std::cout << "archive " << a.id << " NOT destroyed: " << e.what() << "\n";
      failed.push_back(e);
      continue;
    }
    change_state(
        ctx, a, "destroyed",
        audit::Record{audit::Kind::run, "archive expire", "done", "destroyed", std::nullopt,
                      util::JsonObject().add("bytes", static_cast<long long>(a.size)).str(),
                      util::JsonObject()
                          .add("archive_id", a.id)
                          .add("from", a.state)
                          .add("retention_until", a.retention_until)
                          .str()});
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
  change_state(
      ctx, a, state,
      audit::Record{audit::Kind::manual, "archive mark", "done", state, std::nullopt, "{}",
                    util::JsonObject().add("archive_id", a.id).add("from", a.state).str()});
  std::cout << "archive " << a.id << ": " << a.state << " -> " << state << "\n";
  return 0;
}

} // namespace lethe::jobs::archive
