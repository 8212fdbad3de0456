#include "support/cluster.hpp"

#include "sample/generator.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/util/files.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace lethe::test {
namespace {

std::string replace_line(const std::string& text, const std::string& key, const std::string& line) {
  std::string out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    out += (l.rfind(key + " = ", 0) == 0 ? line : l) + "\n";
  }
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

std::string unique_suffix() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
         std::to_string(rd() % 100000);
}

settings::Settings admin_settings(const std::string& dbname) {
  const ClusterInfo& c = cluster();
  std::string text = "[database]\ndsn = \"host=" + c.host + " port=" + std::to_string(c.port) +
                     " dbname=" + dbname + " user=" + c.admin + "\"\nsslrootcert = \"" + c.ca +
                     "\"\npassword_file = \"" + c.admin_password_file +
                     "\"\n[pii.root]\ntable = \"t\"\nkey = \"k\"\nshipped_at = \"s\"\n"
                     "columns = [{ name = \"c\", strategy = \"null\" }]\n";
  return settings::load_from_string(text, "admin.toml");
}

} // namespace

const ClusterInfo& cluster() {
  static const ClusterInfo info = [] {
    const char* dir = std::getenv("LETHE_TEST_CLUSTER");
    if (dir == nullptr) {
      FAIL("LETHE_TEST_CLUSTER is not set: run the integration tests through ctest");
    }
    std::ifstream in(std::string(dir) + "/cluster.env");
    std::map<std::string, std::string> env;
    std::string line;
    while (std::getline(in, line)) {
      auto eq = line.find('=');
      if (eq != std::string::npos) {
        env[line.substr(0, eq)] = line.substr(eq + 1);
      }
    }
    ClusterInfo c;
    c.host = env["LETHE_PG_HOST"];
    c.port = std::stoi(env.at("LETHE_PG_PORT"));
    c.plain_port = std::stoi(env.at("LETHE_PG_PLAIN_PORT"));
    c.ca = env["LETHE_PG_CA"];
    c.other_ca = env["LETHE_PG_OTHER_CA"];
    c.admin = env["LETHE_PG_ADMIN"];
    c.admin_password_file = env["LETHE_PG_ADMIN_PASSWORD_FILE"];
    c.server_log = env["LETHE_PG_SERVER_LOG"];
    return c;
  }();
  return info;
}

std::filesystem::path scratch_dir(const std::string& tag) {
  std::filesystem::path p = std::filesystem::path(LETHE_SCRATCH) / (tag + "-" + unique_suffix());
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  std::filesystem::permissions(p, std::filesystem::perms::owner_all);
  return p;
}

void write_file(const std::filesystem::path& path, const std::string& text, unsigned mode) {
  std::filesystem::remove(path);
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  ::chmod(path.c_str(), mode);
}

RunResult run_shell(const std::string& command, const std::filesystem::path& dir) {
  static std::atomic<int> n{0};
  std::string id = std::to_string(n++);
  std::filesystem::path out = dir / ("run" + id + ".out");
  std::filesystem::path err = dir / ("run" + id + ".err");
  int status = std::system((command + " >" + out.string() + " 2>" + err.string()).c_str());
  RunResult r;
  r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = util::read_file(out);
  r.err = util::read_file(err);
  return r;
}

std::unique_ptr<db::Session> admin_session(const std::string& dbname) {
  return db::connect(admin_settings(dbname));
}

std::string set_key(const std::string& text, const std::string& key, const std::string& value) {
  return replace_line(text, key, key + " = " + value);
}

std::string table_digest(db::Session& s, const std::string& table) {
  return s
      .exec("SELECT coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), 'empty') FROM " +
            db::quote_ident(table) + " t")
      .text(0, 0);
}

void insert_order(db::Session& s, const std::string& as_of, const OrderSpec& o) {
  s.exec("INSERT INTO orders (amazon_order_id, seller_id, marketplace_id, purchase_date, "
         "last_update_date, order_status, shipped_at, is_business_order, buyer_email, buyer_name) "
         "VALUES ($1, 'S', 'M', $2::timestamptz - interval '60 days', $2::timestamptz - "
         "$4::interval, $3, $2::timestamptz - $5::interval, $6, $7, $8)",
         {o.id, as_of, o.status, o.update_age,
          o.shipped_age.empty() ? db::Value{} : db::Value{o.shipped_age},
          std::string(o.business ? "t" : "f"),
          o.with_pii ? db::Value{"b-" + o.id + "@example.org"}
                     : db::Value{"hmac:" + std::string(64, 'a')},
          o.with_pii ? db::Value{"Name " + o.id} : db::Value{"[redacted]"}});
  s.exec("INSERT INTO shipping_addresses (amazon_order_id, name, address_line1, phone, "
         "state_or_region, country_code) VALUES ($1, $2, $3, $4, 'WA', 'US')",
         {o.id, o.with_pii ? db::Value{"Name " + o.id} : db::Value{},
          o.with_pii ? db::Value{"1 Street " + o.id} : db::Value{},
          o.with_pii ? db::Value{"+1-555-" + o.id} : db::Value{}});
  s.exec("INSERT INTO order_items VALUES ($1 || '-1', $1, 'B000000001', 'SKU-1', 'Kettle', 2, "
         "19.99, 'USD')",
         {o.id});
  if (o.business) {
    s.exec("INSERT INTO buyer_tax_info VALUES ((SELECT coalesce(max(tax_info_id), 0) + 1 FROM "
           "buyer_tax_info), $1, $2, 'WA')",
           {o.id, "Company " + o.id + " LLC"});
    s.exec("INSERT INTO buyer_tax_classifications SELECT tax_info_id, 'VATNumber', 'US-' || $1 "
           "FROM buyer_tax_info WHERE amazon_order_id = $1",
           {o.id});
  }
}

TestDb::TestDb(const std::string& tag, long orders, const std::string& to_date) {
  m_name = "t_" + tag + "_" + unique_suffix();
  m_dir = scratch_dir(tag);
  admin_session("postgres")->exec("CREATE DATABASE " + db::quote_ident(m_name));
  write_file(m_dir / "hmac.key", "test-hmac-key\n");
  m_config = write_config("lethe.toml", config_text());
  auto s = admin();
  sample::create_schema(*s, util::read_file(LETHE_SOURCE_DIR "/sql/sample/orders.sql"));
  if (orders > 0) {
    sample::Options opt;
    opt.orders = orders;
    opt.seed = 7;
    opt.to_epoch =
        to_date.empty() ? static_cast<long long>(std::time(nullptr)) : sample::parse_date(to_date);
    opt.from_epoch = opt.to_epoch - 120LL * 86400;
    sample::load(*s, opt);
  }
}

TestDb::~TestDb() {
  try {
    admin_session("postgres")
        ->exec("DROP DATABASE IF EXISTS " + db::quote_ident(m_name) + " WITH (FORCE)");
  } catch (...) {
  }
}

std::string TestDb::config_text(const std::string& user, const std::string& password_file,
                                const std::string& dsn_extra) const {
  const ClusterInfo& c = cluster();
  std::string text = util::read_file(LETHE_SOURCE_DIR "/config/lethe.example.toml");
  text = replace_line(text, "dsn",
                      "dsn = \"host=" + c.host + " port=" + std::to_string(c.port) +
                          " dbname=" + m_name + " user=" + (user.empty() ? c.admin : user) +
                          (dsn_extra.empty() ? "" : " " + dsn_extra) + "\"");
  text = replace_line(text, "sslrootcert", "sslrootcert = \"" + c.ca + "\"");
  text = replace_line(text, "password_file",
                      "password_file = \"" +
                          (password_file.empty() ? c.admin_password_file : password_file) + "\"");
  text = replace_all(text, "/var/lib/lethe", m_dir.string());
  text = replace_all(text, "/etc/lethe/hmac.key", (m_dir / "hmac.key").string());
  text = replace_all(text, "/etc/lethe/archive-2026.pub", (m_dir / "archive.pub").string());
  text = replace_all(text, "/etc/lethe/backup-2026.pub", (m_dir / "backup.pub").string());
  return text;
}

std::filesystem::path TestDb::write_config(const std::string& file, const std::string& text) const {
  write_file(m_dir / file, text, 0644);
  return m_dir / file;
}

settings::Settings TestDb::settings() const {
  return settings::load(m_config);
}

std::unique_ptr<db::Session> TestDb::admin() const {
  return admin_session(m_name);
}

RunResult TestDb::lethe(const std::string& args, const std::filesystem::path& config) const {
  return run_shell(std::string(LETHE_BIN) + " --config " +
                       (config.empty() ? m_config : config).string() + " " + args,
                   m_dir);
}

void TestDb::migrate_and_grant() const {
  RunResult m = lethe("migrate");
  INFO(m.err);
  REQUIRE(m.exit == 0);
  alter_roles(db::grants_sql(settings()));
}

void TestDb::alter_roles(const std::string& sql) const {
  auto s = admin();
  // Roles are the cluster's: two test processes changing one role (its membership, attributes
  // or password) at once can fail with "tuple concurrently updated" (XX000), so they take turns.
  int fd = ::open((m_dir.parent_path() / "roles.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  ::flock(fd, LOCK_EX);
  try {
    s->exec(sql);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

void TestDb::approve() const {
  RunResult a = lethe("config approve --operator test-setup --reason 'schema of the test'");
  INFO(a.out + a.err);
  REQUIRE(a.exit == 0);
}

void TestDb::make_archive_keys() const {
  make_keys("archive");
  make_keys("backup");
}

void TestDb::make_keys(const std::string& name) const {
  RunResult r = run_shell(std::string(LETHE_BIN) + " keygen --out-private " +
                              (m_dir / (name + ".pem")).string() + " --out-public " +
                              (m_dir / (name + ".pub")).string(),
                          m_dir);
  REQUIRE(r.exit == 0);
}

std::vector<std::string> TestDb::pii_values() const {
  settings::Settings s = settings();
  auto session = admin();
  std::vector<std::string> out;
  for (const settings::PiiTable* t : s.pii_tables()) {
    for (const settings::PiiColumn& c : t->columns) {
      db::Rows r = session->exec("SELECT DISTINCT " + db::quote_ident(c.name) + "::text FROM " +
                                 db::quote_ident(t->table) + " WHERE " + db::quote_ident(c.name) +
                                 " IS NOT NULL");
      for (size_t i = 0; i < r.size(); ++i) {
        // Very short values (a state code, "US") and short numbers (a 5-digit postal code)
        // would match counts and timings anywhere; everything longer is scanned for.
        const std::string& v = r.text(i, 0);
        bool numeric = v.find_first_not_of("0123456789-") == std::string::npos;
        if (v.size() >= (numeric ? 8U : 5U)) {
          out.push_back(v);
        }
      }
    }
  }
  return out;
}

size_t require_no_pii(const std::string& text, const std::vector<std::string>& pii) {
  for (const std::string& v : pii) {
    INFO("a PII value leaked");
    REQUIRE(text.find(v) == std::string::npos);
  }
  return pii.size();
}

} // namespace lethe::test
