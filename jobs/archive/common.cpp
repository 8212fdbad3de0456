#include "jobs/archive/common.hpp"

#include "worker/crypto/hash.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <fstream>
#include <sys/stat.h>

namespace lethe::jobs::archive {

void ensure_spool(const settings::Settings& s) {
  const std::filesystem::path& dir = s.archive_spool_dir;
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

std::set<std::string> cataloged_files(db::Session& session) {
  db::Rows r = session.exec("SELECT path FROM lethe.archives");
  std::set<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.insert(r.text(i, 0));
  }
  return out;
}

std::vector<TableColumns> table_columns(db::Transaction& tx, const settings::Settings& s) {
  std::vector<TableColumns> out;
  for (const settings::PiiTable* t : s.pii_tables()) {
    TableColumns tc;
    tc.table = t->table;
    db::Rows r = tx.exec("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                         "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT "
                         "attisdropped ORDER BY attnum",
                         {db::quote_ident(t->table)});
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
  out.owned.reserve(s.archive_recipients.size());
  std::string json = "[";
  for (const std::string& file : s.archive_recipients) {
    out.owned.push_back(crypto::load_public_key(file));
    json += (json.size() > 1 ? "," : "") +
            util::JsonObject()
                .add("namespace", s.archive_key_namespace)
                .add("name", s.archive_key_name)
                .add("file", file)
                .add("sha256", crypto::hex(crypto::sha256(util::read_file(file))))
                .str();
  }
  for (const crypto::RsaKey& k : out.owned) {
    out.keys.push_back({s.archive_key_namespace, s.archive_key_name, &k});
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

} // namespace lethe::jobs::archive
