// C15: every run writes lethe.prom (and `lethe check` lethe-check.prom) for node_exporter's
// textfile collector; Debian's promtool accepts each file every job writes, and the numbers are
// the database's. Anomaly alarms (volume, requests per day) are alarm records that open incidents.
#include "support/cluster.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

using namespace lethe;

namespace {

// A configuration writing metrics into dir()/metrics (made here), as `role` when given.
std::filesystem::path metrics_config(const test::TestDb& t, const std::string& file,
                                     const std::string& role = {}, const std::string& extra = {}) {
  std::filesystem::create_directories(t.dir() / "metrics");
  std::string text = t.config_text();
  if (!role.empty()) {
    t.alter_roles("ALTER ROLE " + role + " PASSWORD 'pw-" + role + "'");
    std::filesystem::path p = t.dir() / (role + ".password");
    test::write_file(p, "pw-" + role + "\n", 0600);
    text = t.config_text(role, p.string());
  }
  text = test::set_key(text, "textfile_dir", "\"" + (t.dir() / "metrics").string() + "\"");
  return t.write_config(file, text + extra);
}

// `promtool check metrics` on the file: exit 0 and nothing said (lint problems are printed).
void require_promtool_accepts(const test::TestDb& t, const std::filesystem::path& file) {
  test::RunResult r = test::run_shell("promtool check metrics < " + file.string(), t.dir());
  INFO(file.string() << "\n" << r.out << r.err << "\n" << util::read_file(file));
  REQUIRE(r.exit == 0);
  CHECK(r.out + r.err == "");
}

// The samples of an exposition file: "name{labels}" -> value.
std::map<std::string, double> samples(const std::filesystem::path& file) {
  std::map<std::string, double> out;
  std::string text = util::read_file(file);
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line[0] == '#') {
      continue;
    }
    size_t sp = line.rfind(' ');
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

double value_of(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  INFO(key);
  REQUIRE(it != m.end());
  return it->second;
}

double scalar(db::Session& s, const std::string& sql) {
  return std::stod(s.exec(sql).text(0, 0));
}

test::RunResult run(const test::TestDb& t, const std::string& args,
                    const std::filesystem::path& cfg, int exit = 0) {
  test::RunResult r = t.lethe(args, cfg);
  INFO(args << "\n" << r.out << r.err);
  REQUIRE(r.exit == exit);
  return r;
}

} // namespace

TEST_CASE("metrics: every job writes lethe.prom that promtool accepts, with the database's "
          "numbers, and no PII",
          "[metrics]") {
  test::TestDb t("metrics_jobs", 300);
  t.migrate_and_grant();
  t.approve();
  t.make_archive_keys();
  auto cfg = metrics_config(t, "metrics.toml");
  std::filesystem::path prom = t.dir() / "metrics" / "lethe.prom";
  auto s = t.admin();

  // The first purge is refused by the safety limit: an alarm record, an incident, and metrics.
  run(t, "purge", cfg, 65);
  require_promtool_accepts(t, prom);
  CHECK(value_of(samples(prom), "lethe_incidents_open") == 1);
  CHECK(value_of(samples(prom), "lethe_alarms_total") == 1);

  const std::string pem = (t.dir() / "backup.pem").string();
  for (const std::string& job :
       {std::string("purge --force"), std::string("archive run"), std::string("archive verify"),
        std::string("backup run"), std::string("backup verify"), "drill run --private-key " + pem,
        std::string("audit verify")}) {
    std::filesystem::remove(prom);
    run(t, job, cfg);
    INFO(job);
    REQUIRE(std::filesystem::exists(prom));
    require_promtool_accepts(t, prom);
  }
  // Mode 0644 for node_exporter's user, whatever the umask; no temporary file left.
  struct stat st {};
  REQUIRE(::stat(prom.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(t.dir() / "metrics")) {
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
    ++files;
  }
  CHECK(files == 1);

  std::map<std::string, double> m = samples(prom);
  // No label the scrape sets itself (it would rename ours to exported_job and every rule that
  // selects on it would match nothing): the job a sample is about is `lethe_job`.
  for (const auto& [key, value] : m) {
    INFO(key);
    std::string other = key;
    for (size_t at = other.find("lethe_job="); at != std::string::npos;
         at = other.find("lethe_job=")) {
      other.erase(at, 10);
    }
    CHECK(other.find("job=") == std::string::npos);
    CHECK(key.find("instance=") == std::string::npos);
  }
  CHECK(value_of(m, "lethe_job_orders_processed_total{lethe_job=\"purge\"}") ==
        scalar(*s, "SELECT sum((counts::jsonb ->> 'orders_done')::bigint) FROM lethe.job_runs "
                   "WHERE job = 'purge'"));
  CHECK(value_of(m, "lethe_job_orders_processed_total{lethe_job=\"purge\"}") > 0);
  CHECK(value_of(m, "lethe_job_rows_processed_total{lethe_job=\"archive run\"}") ==
        scalar(*s, "SELECT sum((counts::jsonb ->> 'rows_sanitized')::bigint) FROM lethe.job_runs "
                   "WHERE job = 'archive run'"));
  CHECK(value_of(m, "lethe_job_runs_total{lethe_job=\"purge\",outcome=\"done\"}") == 1);
  CHECK(value_of(m, "lethe_job_last_success_timestamp_seconds{lethe_job=\"backup run\"}") ==
        Approx(scalar(*s, "SELECT extract(epoch FROM finished_at) FROM lethe.job_runs "
                          "WHERE job = 'backup run'")));
  CHECK(value_of(m, "lethe_archives{state=\"spooled\"}") ==
        scalar(*s, "SELECT count(*) FROM lethe.archives WHERE state = 'spooled'"));
  CHECK(value_of(m, "lethe_archives{state=\"spooled\"}") == 1);
  CHECK(value_of(m, "lethe_archive_bytes{state=\"spooled\"}") ==
        scalar(*s, "SELECT sum(size_bytes) FROM lethe.archives"));
  CHECK(value_of(m, "lethe_backups{state=\"spooled\"}") == 1);
  CHECK(value_of(m, "lethe_backup_bytes{state=\"spooled\"}") ==
        scalar(*s, "SELECT sum(size_bytes) FROM lethe.backups"));
  CHECK(value_of(m, "lethe_drills_total{result=\"successful\"}") == 1);
  CHECK(value_of(m, "lethe_drill_last_rto_seconds") ==
        Approx(scalar(*s, "SELECT rto_seconds FROM lethe.drills")));
  CHECK(value_of(m, "lethe_verify_last_success{what=\"archive\"}") == 1);
  CHECK(value_of(m, "lethe_verify_last_success{what=\"backup\"}") == 1);
  CHECK(value_of(m, "lethe_verify_last_success{what=\"audit\"}") == 1);
  // Written after the run's last record: the chain's length as the file was written.
  CHECK(value_of(m, "lethe_audit_records_total") ==
        scalar(*s, "SELECT count(*) FROM lethe.audit_log"));
  CHECK(value_of(m, "lethe_requests_open{state=\"received\"}") == 0);
  CHECK(m.count("lethe_request_deadline_timestamp_seconds{clock=\"72h\"}") == 0);
  CHECK(value_of(m, "lethe_incidents_open") == 1);
  CHECK(value_of(m, "lethe_incident_notify_deadline_timestamp_seconds") ==
        Approx(scalar(*s, "SELECT extract(epoch FROM notify_by) FROM lethe.incidents")));

  // A subset verify checks what it was to check; a verify that finds a damaged backup fails.
  test::RunResult part = run(t, "backup verify --subset 2/2 --json", cfg);
  CHECK(part.out.find("\"not_in_subset\":1") != std::string::npos);
  CHECK(samples(prom).at("lethe_verify_last_success{what=\"backup\"}") == 1);
  std::string dump = s->exec("SELECT path FROM lethe.backups").text(0, 0);
  std::filesystem::rename(dump, dump + ".away");
  run(t, "backup verify", cfg, 65);
  CHECK(samples(prom).at("lethe_verify_last_success{what=\"backup\"}") == 0);
  std::filesystem::rename(dump + ".away", dump);
  run(t, "backup verify", cfg);
  CHECK(samples(prom).at("lethe_verify_last_success{what=\"backup\"}") == 1);

  // A deletion request: its two deadlines, as timestamps.
  run(t,
      "request add --action delete --operator op --reason test --amazon-ref M1 --scope order:" +
          s->exec("SELECT amazon_order_id FROM orders ORDER BY 1 LIMIT 1").text(0, 0),
      cfg);
  require_promtool_accepts(t, prom);
  m = samples(prom);
  CHECK(value_of(m, "lethe_requests_open{state=\"received\"}") == 1);
  CHECK(value_of(m, "lethe_requests_total") == 1);
  CHECK(value_of(m, "lethe_request_deadline_timestamp_seconds{clock=\"72h\"}") ==
        Approx(scalar(*s, "SELECT extract(epoch FROM notice_at + interval '72 hours') "
                          "FROM lethe.requests")));
  CHECK(value_of(m, "lethe_request_deadline_timestamp_seconds{clock=\"90d\"}") ==
        Approx(scalar(*s, "SELECT extract(epoch FROM notice_at + interval '90 days') "
                          "FROM lethe.requests")));
  run(t, "request run", cfg);
  require_promtool_accepts(t, prom);

  // `lethe check` also writes lethe-check.prom, with the counts its --json prints.
  std::filesystem::path check_prom = t.dir() / "metrics" / "lethe-check.prom";
  test::RunResult c = t.lethe("check --json", cfg);
  INFO(c.out << c.err);
  REQUIRE((c.exit == 0 || c.exit == 1));
  require_promtool_accepts(t, check_prom);
  nlohmann::json cj = nlohmann::json::parse(c.out);
  std::map<std::string, double> cm = samples(check_prom);
  for (const auto& tbl : cj["tables"]) {
    std::string name = tbl["table"];
    CHECK(value_of(cm, "lethe_pii_overdue_rows{table=\"" + name + "\"}") ==
          tbl["overdue"].get<double>());
    CHECK(value_of(cm, "lethe_pii_held_rows{table=\"" + name + "\"}") ==
          tbl["held_awaiting_archive"].get<double>());
  }
  CHECK(value_of(cm, "lethe_held_orders") ==
        cj["tables"][0]["held_awaiting_archive"].get<double>());
  // An as-of check is a what-if: it writes no metrics.
  std::filesystem::remove(check_prom);
  t.lethe("check --as-of '2020-01-01'", cfg);
  CHECK_FALSE(std::filesystem::exists(check_prom));

  // No PII in any file the metrics directory holds.
  std::vector<std::string> pii = t.pii_values();
  test::require_no_pii(util::read_file(prom) + util::read_file(t.dir() / "metrics" / "lethe.prom"),
                       pii);
}

TEST_CASE(
    "metrics: a job role and the monitor role write the same file, and a missing directory is "
    "a warning, never the run's outcome",
    "[metrics]") {
  test::TestDb t("metrics_roles", 100);
  t.migrate_and_grant();
  t.approve();
  std::filesystem::path prom = t.dir() / "metrics" / "lethe.prom";
  auto purge = metrics_config(t, "purge.toml", "lethe_purge");
  run(t, "purge --force", purge);
  require_promtool_accepts(t, prom);
  CHECK(samples(prom).count("lethe_job_last_success_timestamp_seconds{lethe_job=\"purge\"}") == 1);
  std::filesystem::remove(prom);
  auto monitor = metrics_config(t, "monitor.toml", "lethe_monitor");
  test::RunResult c = t.lethe("check", monitor);
  INFO(c.out << c.err);
  CHECK(c.exit == 0);
  require_promtool_accepts(t, prom);
  require_promtool_accepts(t, t.dir() / "metrics" / "lethe-check.prom");
  run(t, "audit verify", monitor);
  CHECK(samples(prom).at("lethe_verify_last_success{what=\"audit\"}") == 1);

  std::filesystem::remove_all(t.dir() / "metrics");
  test::RunResult r = t.lethe("purge --force", purge);
  CHECK(r.exit == 0);
  CHECK(r.err.find("metrics.not_written") != std::string::npos);
}

TEST_CASE("alarms: a run far above its job's median and too many requests a day are alarm "
          "records that open incidents",
          "[metrics][alarms]") {
  test::TestDb t("alarms_volume", 300);
  t.migrate_and_grant();
  auto s = t.admin();
  // Three earlier purges of 10 orders each: the median is 10.
  for (int i = 0; i < 3; ++i) {
    s->exec("INSERT INTO lethe.job_runs (job, actor, os_user, lethe_version, outcome, "
            "finished_at, counts) VALUES ('purge', 't', 't', 'x', 'done', now(), "
            "'{\"orders_done\":10}')");
  }
  // The baseline a run compares with, from the database (a failed run is no baseline).
  s->exec("INSERT INTO lethe.job_runs (job, actor, os_user, lethe_version, outcome, finished_at, "
          "counts) VALUES ('purge', 't', 't', 'x', 'failed', now(), '{\"orders_done\":5000}')");
  db::Rows b = s->exec("SELECT volume, median, runs FROM lethe.run_volume_baseline("
                       "(SELECT max(run_id) FROM lethe.job_runs), '{\"orders_done\":31}')");
  CHECK(b.text(0, 0) == "31");
  CHECK(b.text(0, 1) == "10");
  CHECK(b.text(0, 2) == "3");
  test::RunResult p = t.lethe("purge --force");
  INFO(p.err);
  REQUIRE(p.exit == 0);
  long long done = s->exec("SELECT (counts::jsonb ->> 'orders_done')::bigint FROM lethe.job_runs "
                           "ORDER BY run_id DESC LIMIT 1")
                       .integer(0, 0);
  REQUIRE(done > 30);
  db::Rows a = s->exec("SELECT run_id, counts::jsonb ->> 'volume', "
                       "counts::jsonb ->> 'median_of_previous' FROM lethe.audit_log "
                       "WHERE kind = 'alarm' AND exit_reason = 'volume'");
  REQUIRE(a.size() == 1);
  CHECK(a.text(0, 1) == std::to_string(done));
  CHECK(a.text(0, 2) == "10");
  CHECK(
      s->exec("SELECT count(*) FROM lethe.incidents WHERE kind = 'purge: volume'").integer(0, 0) ==
      1);
  // The run closed after its alarm, in the same transaction's order: alarm, then run record.
  CHECK(s->exec("SELECT kind FROM lethe.audit_log WHERE run_id = " + a.text(0, 0) + " ORDER BY seq")
            .text(0, 0) == "alarm");
  CHECK(t.lethe("audit verify").exit == 0);

  // Requests: more than alarms.requests_per_day registered within 24 hours.
  auto cfg = t.write_config("rate.toml", test::set_key(t.config_text(), "requests_per_day", "1"));
  db::Rows ids = s->exec("SELECT amazon_order_id FROM orders ORDER BY 1 LIMIT 2");
  REQUIRE(
      t.lethe(
           "request add --action delete --operator op --reason r --amazon-ref R1 --scope order:" +
               ids.text(0, 0),
           cfg)
          .exit == 0);
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'requests_per_day'")
            .integer(0, 0) == 0);
  test::RunResult second = t.lethe(
      "request add --action delete --operator op --reason r --amazon-ref R2 --scope order:" +
          ids.text(1, 0),
      cfg);
  INFO(second.err);
  REQUIRE(second.exit == 0);
  CHECK(s->exec("SELECT counts::jsonb ->> 'registered_last_24h' FROM lethe.audit_log "
                "WHERE kind = 'alarm' AND exit_reason = 'requests_per_day'")
            .text(0, 0) == "2");
  CHECK(s->exec("SELECT alarms FROM lethe.incidents WHERE kind = 'request: requests_per_day'")
            .integer(0, 0) == 1);
  CHECK(t.lethe("audit verify").exit == 0);
}
