#include "jobs/backup/common.hpp"

#include "worker/crypto/esdk.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/crypto/keys.hpp"
#include "worker/util/json.hpp"
#include "worker/vault/sealed.hpp"

#include <tuple>

namespace lethe::jobs::backup {

util::ChildSpec pg_child(const settings::Settings& s, const util::Secret& password,
                         const std::string& program, const std::string& what) {
  util::ChildSpec spec;
  spec.program = program;
  spec.what = what;
  spec.env = {{"PGSSLMODE", "verify-full"},
              {"PGSSLROOTCERT", s.database.sslrootcert},
              {"PGCONNECT_TIMEOUT", std::to_string(s.database.connect_timeout_s)},
              {"PGAPPNAME", "lethe-" + what},
              {"PGTZ", "UTC"}};
  if (!password.empty()) {
    spec.secret_env = {{"PGPASSWORD", &password}};
  }
  return spec;
}

std::string child_failure(const util::Child& c, int status) {
  const std::string& err = c.stderr_text();
  auto says = [&err](const char* words) { return err.find(words) != std::string::npos; };
  std::string why;
  if (status == 127) {
    why = "the program was not found (backup." + c.what() + " names it)";
  } else if (says("server version mismatch")) {
    why = "it is older than the server: install the client of the server's major version";
  } else if (says("password authentication failed") || says("no password supplied")) {
    why = "the server refused its login (the same password source as lethe: "
          "database.password_file or the credential)";
  } else if (says("certificate") || says("SSL")) {
    why = "TLS verification failed (database.sslrootcert, the server's certificate)";
  } else if (says("could not connect") || says("connection to server")) {
    why = "it could not connect to the server, or lost the connection";
  } else if (says("permission denied")) {
    why = "the role lacks a privilege (`lethe grants` makes lethe_backup a member of "
          "pg_read_all_data, and lethe_drill a role that may create databases)";
  } else if (says("snapshot")) {
    why = "it could not use the exported snapshot";
  } else if (says("input file") || says("did not find magic") || says("unsupported version")) {
    why = "its input is not a pg_dump custom-format archive";
  } else {
    why = "run it by hand as the same role to read its own message (lethe does not repeat a "
          "server's text)";
  }
  return c.what() +
         (status > 128 ? " ended by signal " + std::to_string(status - 128)
                       : " exited with status " + std::to_string(status)) +
         ": " + why;
}

std::unique_ptr<BackupKey> load_backup_key(const settings::Settings& s,
                                           const std::string& private_key) {
  if (private_key.empty()) {
    throw Error(Exit::usage, "this needs the backup private key",
                "pass --private-key with the private half of a backup.recipients key (a file "
                "only its owner can read, or a systemd credential name)");
  }
  auto out = std::make_unique<BackupKey>(BackupKey{crypto::load_private_key(private_key), {}});
  out->params.keys.push_back({s.backup.key_namespace, s.backup.key_name, &out->key});
  return out;
}

std::string read_sealed_text(const std::filesystem::path& path, const BackupKey& key,
                             const std::string& label, const std::string& id) {
  vault::SealedReader r(path, key.params, label, id, "backup " + id);
  std::string out;
  unsigned char buf[1U << 16];
  for (size_t n; (n = r.read(buf, sizeof buf)) > 0;) {
    out.append(reinterpret_cast<const char*>(buf), n);
    if (out.size() > (16U << 20)) {
      throw Error(Exit::data, "the manifest of backup " + id + " is larger than 16 MiB",
                  "it is not what lethe writes: keep the files for the incident record (C18)");
    }
  }
  return out;
}

Streamed stream_dump(const db::store::BackupRow& b, const BackupKey& key, util::Child* child,
                     bool read_through) {
  vault::SealedReader r(b.path, key.params, k_dump_label, b.id, "backup " + b.id);
  crypto::Sha256 sha;
  Streamed out;
  std::vector<unsigned char> buf(1U << 16);
  bool feeding = child != nullptr;
  for (size_t n; (n = r.read(buf.data(), buf.size())) > 0;) {
    sha.update({reinterpret_cast<const char*>(buf.data()), n});
    out.bytes += n;
    if (feeding && !child->write(buf.data(), n)) {
      feeding = false; // the child stopped reading (it ended)
      if (!read_through) {
        return out;
      }
    }
  }
  if (child != nullptr) {
    child->close_stdin();
  }
  out.sha256 = crypto::hex(sha.finish());
  out.complete = true;
  return out;
}

Manifest read_manifest(const db::store::BackupRow& b, const BackupKey& key) {
  util::Json j =
      util::parse_json(read_sealed_text(b.manifest_path, key, k_manifest_label, b.id), "manifest");
  auto bad = [&b](const std::string& what) {
    return Error(Exit::data, "the manifest of backup " + b.id + " " + what,
                 "it is not what lethe writes: keep the files for the incident record (C18)");
  };
  if (!j.is_object() || j.value("format", std::string()) != "lethe-backup-1") {
    throw bad("is not a lethe-backup-1 manifest");
  }
  if (j.value("backup_id", std::string()) != b.id) {
    throw bad("names another backup");
  }
  Manifest m;
  try {
    m.dump_sha256 = j.at("dump_sha256").get<std::string>();
    m.dump_bytes = j.at("dump_bytes").get<unsigned long long>();
    m.snapshot_at = j.at("snapshot_at").get<std::string>();
    m.server_version = j.value("server_version", std::string());
    m.pg_dump_version = j.value("pg_dump_version", std::string());
    for (const auto& [t, n] : j.at("tables").items()) {
      m.tables.emplace_back(t, n.get<long long>());
    }
  } catch (const util::Json::exception&) {
    throw bad("lacks a field or has one of the wrong type");
  }
  return m;
}

std::string evidence_problem(db::Session& s, const db::store::BackupRow& b) {
  std::optional<db::store::BackupEvidence> w = db::store::backup_written_record(s, b.id);
  if (!w) {
    return "catalog: no single backup_written audit record";
  }
  if (w->bytes != std::to_string(b.size) || w->sha256 != b.sha256 ||
      w->manifest_sha256 != b.manifest_sha256) {
    return "catalog: its length or SHA-256 differs from its backup_written audit record";
  }
  if (b.state == "spooled") {
    for (const auto& [path, size, sha, part] :
         {std::tuple{b.path, b.size, b.sha256, "dump"},
          std::tuple{b.manifest_path, b.manifest_size, b.manifest_sha256, "manifest"}}) {
      vault::FileCheck c = vault::check_file(path);
      if (!c.exists) {
        return std::string("file: the ") + part + " file is missing";
      }
      if (c.size != size || c.sha256 != sha) {
        return std::string("file: the ") + part +
               " file's length or SHA-256 differs from the catalog and its audit record";
      }
    }
  }
  return {};
}

} // namespace lethe::jobs::backup
