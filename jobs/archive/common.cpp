#include "jobs/archive/common.hpp"

#include "worker/crypto/hash.hpp"
#include "worker/db/catalog.hpp"
#include "worker/db/store/archives.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <algorithm>
#include <fstream>
#include <sys/stat.h>

namespace lethe::jobs::archive {

void ensure_spool(const settings::Settings& s) {
  vault::ensure_spool(s.archive.spool_dir, "archive.spool_dir");
}

std::set<std::string> cataloged_ids(db::Session& session) {
  return db::store::archive_ids(session);
}

FileHeader read_header(const std::filesystem::path& path) {
  crypto::esdk::Context ctx = vault::read_label(path);
  auto id = ctx.find("lethe-archive-id");
  auto source = ctx.find("lethe-source");
  return FileHeader{id == ctx.end() ? std::string{} : id->second,
                    source == ctx.end() ? std::string{} : source->second};
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

Recipients load_recipients(const settings::Settings& s) {
  return vault::load_recipients(s.archive.recipients, s.archive.key_namespace, s.archive.key_name);
}

crypto::esdk::EncryptParams archive_params(const Recipients& rcpt, const std::string& id,
                                           const std::string& retention_until,
                                           const std::string& source) {
  crypto::esdk::EncryptParams params;
  params.recipients = rcpt.keys;
  params.context = {{"lethe-object", "archive"},
                    {"lethe-archive-id", id},
                    {"lethe-retention-until", retention_until},
                    {"lethe-schema-version", "2"},
                    {"lethe-source", source}};
  return params;
}

std::string evidence_problem(db::Session& session, const ArchiveFacts& a, ReadFile read) {
  std::vector<db::store::WrittenEvidence> w = db::store::archive_written_records(session, a.id);
  if (w.size() != 1) {
    return a.id + (w.empty() ? ": no archive_written audit record"
                             : ": more than one archive_written audit record");
  }
  if (w[0].bytes != std::to_string(a.size) || w[0].sha256 != a.sha256) {
    return a.id + ": the catalog's length or SHA-256 differs from its archive_written audit record";
  }
  std::string audited = db::store::audited_archive_state(session, a.id);
  if (audited != a.state) {
    return a.id + ": the catalog says " + a.state + ", the audit trail says " + audited;
  }
  // Who destroyed it is the destroyed record's actor and the role the server stamped on it
  // (archives destroyed before schema 4 name no state record and are not checked).
  if (a.state == "destroyed" && db::store::destroyed_by_differs(session, a.id)) {
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
