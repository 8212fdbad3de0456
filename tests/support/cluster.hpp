// Test support: the throwaway TLS cluster started by the pg fixture, a fresh database per test
// loaded with sample orders, and a way to run the real lethe binary against it.
#pragma once

#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace lethe::test {

struct ClusterInfo {
  std::string host;
  int port = 0;
  int plain_port = 0;
  std::string ca;
  std::string other_ca;
  std::string admin;
  std::string admin_password_file;
  std::string server_log; // the TLS server's log file (what its operators would keep)
};

// Reads $LETHE_TEST_CLUSTER/cluster.env (written by tests/harness/pg-cluster).
const ClusterInfo& cluster();

// A fresh directory under build/test-scratch, left in place for reading after the run.
std::filesystem::path scratch_dir(const std::string& tag);

// Writes `text` to `path` with `mode`.
void write_file(const std::filesystem::path& path, const std::string& text, unsigned mode = 0600);

struct RunResult {
  int exit = -1;
  std::string out;
  std::string err;
};

// Runs `command` through the shell, capturing stdout and stderr into files under `dir`.
RunResult run_shell(const std::string& command, const std::filesystem::path& dir);

// A database of its own for one test, with the sample schema and `orders` sample orders.
class TestDb {
public:
  // Sample orders are spread over the 120 days before `to_date` (YYYY-MM-DD; empty: now).
  explicit TestDb(const std::string& tag, long orders = 200, const std::string& to_date = {});
  ~TestDb();
  TestDb(const TestDb&) = delete;
  TestDb& operator=(const TestDb&) = delete;

  const std::string& name() const { return m_name; }
  const std::filesystem::path& dir() const { return m_dir; }
  const std::filesystem::path& config() const { return m_config; }

  // The example configuration rewritten for this database, connecting as `user` with the
  // password in `password_file` (the cluster admin by default); `extra` is appended.
  std::string config_text(const std::string& user = {}, const std::string& password_file = {},
                          const std::string& dsn_extra = {}) const;
  // Writes config_text(...) to a new file in dir() and returns its path.
  std::filesystem::path write_config(const std::string& file, const std::string& text) const;

  settings::Settings settings() const;
  std::unique_ptr<db::Session> admin() const;

  // Runs the lethe binary with --config `config` (default: config()) and `args`.
  RunResult lethe(const std::string& args, const std::filesystem::path& config = {}) const;

  // Runs `lethe migrate` and applies `lethe grants` as the admin.
  void migrate_and_grant() const;

  // Runs `sql`, which changes the cluster's roles (grants, passwords), as the admin, one test
  // process at a time.
  void alter_roles(const std::string& sql) const;

  // Approves the schema (`lethe config approve`), as an operator sets up lethe: until then
  // `lethe check` reports the missing approval and exits 1.
  void approve() const;

  // Makes the key pairs the configuration names: dir()/archive.pem, archive.pub and
  // backup.pem, backup.pub.
  void make_archive_keys() const;
  // Makes the key pair dir()/NAME.pem, NAME.pub (backup.pub is the one backup.recipients names).
  void make_keys(const std::string& name) const;

  // Every PII value (per the PII map) currently in the database, for leak scans.
  std::vector<std::string> pii_values() const;

private:
  std::string m_name;
  std::filesystem::path m_dir;
  std::filesystem::path m_config;
};

// `text` with the line that starts with `key = ` replaced by `key = value`.
std::string set_key(const std::string& text, const std::string& key, const std::string& value);

// md5 over every row of `table` in a stable order: equal digests mean equal contents.
std::string table_digest(db::Session& s, const std::string& table);

// One hand-made order for boundary tests, with a shipping address and an order item (and buyer
// tax info when it is a business order). Ages are PostgreSQL intervals before `as_of`.
struct OrderSpec {
  std::string id;
  std::string status;
  std::string shipped_age; // empty: never shipped
  std::string update_age;
  bool business = false;
  bool with_pii = true; // false: already sanitized as the example map would leave it
};
void insert_order(db::Session& s, const std::string& as_of, const OrderSpec& o);

// An admin session to database `dbname` of the test cluster.
std::unique_ptr<db::Session> admin_session(const std::string& dbname);

// Fails the current test if any of `pii` occurs in `text`; returns how many values were checked.
size_t require_no_pii(const std::string& text, const std::vector<std::string>& pii);

} // namespace lethe::test
