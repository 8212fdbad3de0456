// `lethe archive restore`: check the whole archive against its manifest, then restore it into
// a private directory or a new schema, nothing left behind on failure.
#include "jobs/archive/archive.hpp"
#include "jobs/archive/common.hpp"
#include "jobs/archive/manifest.hpp"
#include "jobs/archive/reading.hpp"
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

// One restore in progress.
struct Restore {
  Context& ctx;
  const RestoreOptions& opt;
  const Cataloged& a;
  const crypto::RsaKey& key;
  Contents contents; // as verify_contents found them
  long long members = 0;
  long long rows = 0;
};

// Reads the archive again for restoring, each member checked against what verify_contents
// found (the file could change between the two reads).
void read_verified(Restore& r,
                   const std::function<void(const std::string&, const std::string&)>& use) {
  archive::read_verified(r.ctx.ready_db(), r.ctx.settings(), r.a, r.key, r.contents, "restored",
                         [&](const std::string& name, const std::string& data) {
                           ++r.members;
                           use(name, data);
                         });
}

// The top-level names a restore into a directory creates: the two JSON members and one
// directory per table.
std::vector<std::string> top_level_names(const Restore& r) {
  std::vector<std::string> out = {"tables.json", "manifest.json"};
  for (const auto& [name, facts] : r.contents.members) {
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
// A quoted column name: the archive's name whole, dots and all (quote_ident reads a dot as a
// schema separator).
std::string quote_column(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  }
  return out + "\"";
}

// Column types come from the archive, which anyone with the public key can write: only plain
// type names this server knows (and no pseudo-types) pass.
bool known_type(db::Transaction& tx, const std::string& type) {
  static const std::regex plain("^[A-Za-z0-9_ ,()\\[\\].]+$");
  if (!std::regex_match(type, plain)) {
    return false;
  }
  try {
    return tx.exec("SELECT coalesce((SELECT typtype <> 'p' FROM pg_type WHERE oid = "
                   "to_regtype($1)), false)",
                   {type})
               .text(0, 0) == "t";
  } catch (const db::DbError& e) {
    if (e.sqlstate().empty() || e.sqlstate().starts_with("08")) {
      throw; // the connection, not the data
    }
    return false; // to_regtype refuses what does not parse as a type name
  }
}

// Checks tables.json's column types and creates the tables in the new schema; returns the
// restored table name of each archived table.
std::map<std::string, std::string> create_tables(Restore& r, db::Transaction& tx) {
  const std::string& id = r.a.id;
  std::optional<std::vector<TableColumns>> tables = parse_tables(r.contents.tables);
  bool known = tables.has_value();
  for (size_t i = 0; known && i < tables->size(); ++i) {
    for (const auto& [name, type] : (*tables)[i].columns) {
      known = known && known_type(tx, type);
    }
  }
  if (!known) {
    throw Error(Exit::data, "archive " + id + " records a column type this server does not know",
                "the archive is not what lethe writes: restore it --into a directory to inspect "
                "it, and keep it for the incident record (C18)");
  }
  std::map<std::string, std::string> target;
  try {
    for (const TableColumns& t : *tables) {
      std::string cols;
      for (const auto& [name, type] : t.columns) {
        cols += (cols.empty() ? "" : ", ") + quote_column(name) + " " + type;
      }
      std::string local = t.table;
      std::replace(local.begin(), local.end(), '.', '_');
      target[t.table] = db::quote_ident(r.opt.into_schema) + "." + db::quote_ident(local);
      tx.exec("CREATE TABLE " + target[t.table] + " (" + cols + ")");
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
        refuse_contents(r.a.id, "has member " + name + " for no table in its tables.json",
                        "restored");
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
                       util::dump({{"members", members}, {"rows", rows}}),
                       util::dump({{"archive_id", archive_id},
                                   {"reason", opt.reason},
                                   {"into", opt.into_dir.empty() ? "schema " + opt.into_schema
                                                                 : "directory " + opt.into_dir}})};
}

audit::Record restore_record(const Restore& r, const std::string& outcome,
                             const std::string& exit_reason) {
  return restore_record(r.opt, r.a.id, r.members, r.rows, outcome, exit_reason);
}

} // namespace

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
  Restore r{ctx, opt, a, *key, {}, 0, 0};
  try {
    util::install_stop_handlers();
    r.contents = verify_contents(s, ctx.settings(), a, *key, "restored");
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

} // namespace lethe::jobs::archive
