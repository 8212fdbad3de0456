#include "jobs/archive/common.hpp"

#include "worker/crypto/hash.hpp"
#include "worker/db/catalog.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <algorithm>
#include <fstream>
#include <sys/stat.h>

namespace lethe::jobs::archive {

void ensure_spool(const settings::Settings& s) {
  const std::filesystem::path& dir = s.archive.spool_dir;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      throw Error(
          Exit::cant_create,
          "cannot create the archive spool " + dir.string() + ": " + ec.message(),
          "create it (mode 0700, owned by the user lethe runs as) or fix archive.spool_dir");
    }
    ::chmod(dir.c_str(), 0700);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(Exit::config, "archive.spool_dir " + dir.string() + " is not a directory",
                "point archive.spool_dir at a directory of mode 0700");
  }
  if ((st.st_mode & 077) != 0) {
    throw Error(Exit::permission, "archive spool " + dir.string() + " is open to group or others",
                "chmod 0700 " + dir.string());
  }
}

std::set<std::string> cataloged_ids(db::Session& session) {
  db::Rows r = session.exec("SELECT archive_id FROM lethe.archives");
  std::set<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.insert(r.text(i, 0));
  }
  return out;
}

FileHeader read_header(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(1 << 20, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  FileHeader out;
  try {
    crypto::esdk::Context ctx;
    if (crypto::esdk::parse_header_only(reinterpret_cast<const unsigned char*>(head.data()),
                                        head.size(), crypto::esdk::k_default_max_wrapped_keys,
                                        &ctx) > 0) {
      auto id = ctx.find("lethe-archive-id");
      auto source = ctx.find("lethe-source");
      out.archive_id = id == ctx.end() ? std::string{} : id->second;
      out.source = source == ctx.end() ? std::string{} : source->second;
    }
  } catch (const Error&) {
    return {}; // not a message lethe can read the header of
  }
  return out;
}

std::vector<TableColumns> table_columns(db::Transaction& tx, const settings::Settings& s) {
  std::vector<TableColumns> out;
  for (const settings::PiiTable* t : s.pii_tables()) {
    TableColumns tc;
    tc.table = t->table;
    db::Rows r = tx.exec(db::k_columns_query, {db::quote_ident(t->table)});
    for (size_t i = 0; i < r.size(); ++i) {
      tc.columns.emplace_back(r.text(i, 0), r.text(i, 1));
    }
    out.push_back(std::move(tc));
  }
  return out;
}

std::string tables_json(const std::vector<TableColumns>& tables) {
  std::string out = "[";
  for (const TableColumns& t : tables) {
    std::string cols = "[";
    for (const auto& [name, type] : t.columns) {
      cols += (cols.size() > 1 ? "," : "") +
              util::JsonObject().add("name", name).add("type", type).str();
    }
    out += (out.size() > 1 ? "," : "") +
           util::JsonObject().add("table", t.table).add_raw("columns", cols + "]").str();
  }
  return out + "]";
}

Recipients load_recipients(const settings::Settings& s) {
  Recipients out;
  out.owned.reserve(s.archive.recipients.size());
  std::string json = "[";
  for (const std::string& file : s.archive.recipients) {
    out.owned.push_back(crypto::load_public_key(file));
    json += (json.size() > 1 ? "," : "") +
            util::JsonObject()
                .add("namespace", s.archive.key_namespace)
                .add("name", s.archive.key_name)
                .add("file", file)
                .add("sha256", crypto::hex(crypto::sha256(util::read_file(file))))
                .str();
  }
  for (const crypto::RsaKey& k : out.owned) {
    out.keys.push_back({s.archive.key_namespace, s.archive.key_name, &k});
  }
  out.json = json + "]";
  return out;
}

FileCheck check_file(const std::filesystem::path& path) {
  FileCheck c;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return c;
  }
  c.exists = true;
  crypto::Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize n = in.gcount();
    if (n > 0) {
      h.update(std::string_view(buf.data(), static_cast<size_t>(n)));
      c.size += static_cast<unsigned long long>(n);
    }
  }
  c.sha256 = crypto::hex(h.finish());
  return c;
}

namespace {

// The state the audit trail says archive `id` is in: the newest state change recorded by
// `archive mark` or `archive expire`, or spooled.
std::string audited_state(db::Session& session, const std::string& id) {
  db::Rows r = session.exec(
      "SELECT exit_reason FROM lethe.audit_log WHERE job IN ('archive mark', 'archive expire') "
      "AND exit_reason IN ('cold', 'destroyed') AND outcome = 'done' AND "
      "(details::jsonb ->> 'archive_id') = $1 ORDER BY seq DESC LIMIT 1",
      {id});
  return r.empty() ? std::string("spooled") : r.text(0, 0);
}

} // namespace

std::string evidence_problem(db::Session& session, const ArchiveFacts& a, ReadFile read) {
  db::Rows w = session.exec("SELECT (counts::jsonb ->> 'bytes'), (details::jsonb ->> 'sha256') "
                            "FROM lethe.audit_log WHERE exit_reason = 'archive_written' AND "
                            "(details::jsonb ->> 'archive_id') = $1 ORDER BY seq",
                            {a.id});
  if (w.size() != 1) {
    return a.id + (w.empty() ? ": no archive_written audit record"
                             : ": more than one archive_written audit record");
  }
  if (w.text(0, 0) != std::to_string(a.size) || w.text(0, 1) != a.sha256) {
    return a.id + ": the catalog's length or SHA-256 differs from its archive_written audit record";
  }
  std::string audited = audited_state(session, a.id);
  if (audited != a.state) {
    return a.id + ": the catalog says " + a.state + ", the audit trail says " + audited;
  }
  // Who destroyed it is the destroyed record's actor and the role the server stamped on it
  // (archives destroyed before schema 4 name no state record and are not checked).
  if (a.state == "destroyed" &&
      session.exec("SELECT count(*) FROM lethe.archives a LEFT JOIN lethe.audit_log l ON l.seq = "
                   "a.state_seq AND l.exit_reason = 'destroyed' WHERE a.archive_id = $1 AND "
                   "a.state_seq IS NOT NULL AND (l.seq IS NULL OR a.destroyed_by IS DISTINCT "
                   "FROM l.actor OR a.destroyed_by_role IS DISTINCT FROM l.db_role)",
                   {a.id})
              .integer(0, 0) != 0) {
    return a.id + ": the catalog's destroyed_by differs from its destroyed audit record";
  }
  if (read == ReadFile::no) {
    return {};
  }
  FileCheck c = check_file(a.path);
  if (!c.exists) {
    return a.id + ": missing from " + a.path;
  }
  if (c.size != a.size || c.sha256 != a.sha256) {
    return a.id + ": length or SHA-256 differs from the catalog and its audit record";
  }
  return {};
}

} // namespace lethe::jobs::archive
