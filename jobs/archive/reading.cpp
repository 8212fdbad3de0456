// Reading archives back, shared by verify and restore: the catalog rows, decrypting and walking
// members, telling a wrong key from a damaged file, loading a member.
#include "jobs/archive/reading.hpp"

#include "jobs/archive/archive.hpp"
#include "jobs/archive/common.hpp"
#include "jobs/archive/manifest.hpp"
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

Cataloged find_archive(db::Session& s, const std::string& id) {
  std::optional<Cataloged> found = db::store::find_archive(s, id);
  if (!found) {
    throw Error(Exit::data, "no archive " + id + " in the catalog",
                "`lethe archive list` shows the archive ids");
  }
  return *found;
}

ArchiveFacts facts_of(const Cataloged& a) {
  return {a.id, a.path, a.size, a.sha256, a.state};
}

// Decrypts archive file `path` with `key` and walks its members: `member(name, data)` gets each
// member whole (members are bounded by archive.member_mib). Checks the encryption context names
// archive `id`.
void read_members(const settings::Settings& s, const std::string& path, const std::string& id,
                  const crypto::RsaKey& key,
                  const std::function<void(const std::string&, const std::string&)>& member) {
  crypto::esdk::DecryptParams params;
  params.keys.push_back({s.archive.key_namespace, s.archive.key_name, &key});
  vault::SealedReader sealed(path, params, "lethe-archive-id", id, "archive");
  lethe::archive::TarReader tar(
      [&](unsigned char* buf, size_t cap) -> size_t { return sealed.read(buf, cap); });
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
  util::Json keys = util::json_or_text(db::store::archive_recipients(db, id));
  std::string out;
  auto str = [](const util::Json& k, const char* key) {
    auto it = k.find(key);
    return it != k.end() && it->is_string() ? it->get<std::string>() : std::string("?");
  };
  for (const util::Json& k : keys.is_array() ? keys : util::Json::array()) {
    if (k.is_object()) {
      out += (out.empty() ? "" : ", ") + str(k, "namespace") + "/" + str(k, "name") +
             " (public key " + str(k, "file") + ", SHA-256 " + str(k, "sha256").substr(0, 16) +
             "...)";
    }
  }
  return out.empty() ? std::string("keys the catalog does not list") : out;
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

void refuse_contents(const std::string& id, const std::string& what, const char* nothing_done) {
  throw Error(Exit::data, "archive " + id + " " + what + "; nothing was " + nothing_done,
              "do not use this file: fetch the archive's other copy, and keep this one for the "
              "incident record (C18)");
}

MemberFacts member_facts(const std::string& data) {
  CsvCounter rows;
  rows.feed(data);
  return {crypto::hex(crypto::sha256(data)), rows.lines};
}

namespace {

void stop_if_asked(const char* nothing_done) {
  if (util::stop_requested()) {
    throw Error(Exit::temporary, "interrupted by a stop signal",
                std::string("nothing was ") + nothing_done + "; run it again");
  }
}

} // namespace

Contents verify_contents(db::Session& s, const settings::Settings& st, const Cataloged& a,
                         const crypto::RsaKey& key, const char* nothing_done) {
  std::map<std::string, MemberFacts> seen;
  Contents out;
  bool have_tables = false;
  read_archive(s, st, a.path, a.id, key, [&](const std::string& name, const std::string& data) {
    stop_if_asked(nothing_done);
    if (seen.contains(name) || (name == "tables.json" && have_tables) ||
        (name == "manifest.json" && !out.manifest.empty())) {
      refuse_contents(a.id, "holds member " + name + " twice", nothing_done);
    }
    if (name == "manifest.json") {
      out.manifest = data;
    } else if (name == "tables.json") {
      out.tables = data;
      have_tables = true;
    } else {
      seen[name] = member_facts(data);
    }
  });
  if (out.manifest.empty() || !have_tables) {
    refuse_contents(a.id, out.manifest.empty() ? "has no manifest" : "has no tables.json",
                    nothing_done);
  }
  // A crafted manifest may leave any field out: a missing one never matches.
  std::optional<std::vector<ManifestMember>> members = manifest_members(out.manifest);
  std::optional<bool> tables_match = manifest_tables_match(out.manifest, out.tables);
  if (!members || !tables_match) {
    refuse_contents(a.id, "has a manifest or tables.json that is not what lethe writes",
                    nothing_done);
  }
  if (!*tables_match) {
    refuse_contents(a.id, "has a tables.json that differs from its manifest", nothing_done);
  }
  for (const ManifestMember& mm : *members) {
    const std::string& name = mm.name;
    MemberFacts want{mm.sha256, mm.rows < 0 ? -1 : mm.rows + (mm.first_part ? 1 : 0)};
    auto it = seen.find(name);
    if (it == seen.end()) {
      refuse_contents(a.id, "lacks member " + name + " that its manifest names", nothing_done);
    }
    if (it->second.sha256 != want.sha256 || it->second.rows != want.rows) {
      refuse_contents(a.id, "has member " + name + " that differs from its manifest", nothing_done);
    }
    out.members[name] = want;
  }
  for (const auto& [name, facts] : seen) {
    if (!out.members.contains(name)) {
      refuse_contents(a.id, "has member " + name + " that its manifest does not name",
                      nothing_done);
    }
  }
  return out;
}

void read_verified(db::Session& s, const settings::Settings& st, const Cataloged& a,
                   const crypto::RsaKey& key, const Contents& checked, const char* nothing_done,
                   const std::function<void(const std::string&, const std::string&)>& use) {
  read_archive(s, st, a.path, a.id, key, [&](const std::string& name, const std::string& data) {
    stop_if_asked(nothing_done);
    bool same = false;
    if (name == "manifest.json") {
      same = data == checked.manifest;
    } else if (name == "tables.json") {
      same = data == checked.tables;
    } else if (auto it = checked.members.find(name); it != checked.members.end()) {
      MemberFacts f = member_facts(data);
      same = f.sha256 == it->second.sha256 && f.rows == it->second.rows;
    }
    if (!same) {
      refuse_contents(a.id, "changed while it was being read", nothing_done);
    }
    use(name, data);
  });
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

} // namespace lethe::jobs::archive
