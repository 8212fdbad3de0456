// Job runs (worker/runtime/runs.cpp, RunScope): a killed run is closed by the next run of any job
// as "abandoned", with an audit record whose counts are what its committed work shows.
#include "support/cluster.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace lethe;

namespace {

const std::string k_as_of = "2026-06-30 12:00:00+00";

// A config for `t` without the safety limits in the way.
std::filesystem::path roomy_config(const test::TestDb& t) {
  std::string text = t.config_text();
  text = test::set_key(text, "max_fraction_of_table", "1.0");
  text = test::set_key(text, "max_rows_per_run", "10000000");
  return t.write_config("roomy.toml", text);
}

} // namespace

namespace {

// Rows of the sample PII map's tables that still hold PII, by the state views (the tester's own
// count: what lost its PII between two calls is what was sanitized).
long long rows_with_pii(db::Session& s) {
  long long n = 0;
  for (const char* view :
       {"pii_state_public_orders", "pii_state_public_shipping_addresses",
        "pii_state_public_buyer_tax_info", "pii_state_public_buyer_tax_classifications"}) {
    n += s.exec(std::string("SELECT count(*) FROM lethe.") + view + " WHERE has_pii").integer(0, 0);
  }
  return n;
}

// Waits until no other session is connected to `s`'s database: a killed client's server
// processes have ended, so whatever they were going to commit has committed.
void await_no_other_sessions(db::Session& s) {
  for (int i = 0; i < 5000; ++i) {
    if (s.exec("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid "
               "<> pg_backend_pid()")
            .integer(0, 0) == 0) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  FAIL("the killed run's sessions did not end");
}

long long count_in(const std::string& counts_json, const std::string& key) {
  std::string needle = "\"" + key + "\":";
  size_t p = counts_json.find(needle);
  return p == std::string::npos ? -1 : std::stoll(counts_json.substr(p + needle.size()));
}

} // namespace

TEST_CASE("purge: a killed run is closed as abandoned by the next run, with the counts that "
          "committed") {
  test::TestDb t("purge_abandoned", 6000, "2026-06-30");
  t.migrate_and_grant();
  auto a = t.admin();
  long long before = rows_with_pii(*a);
  std::string args = "purge --verbose --batch-size 20 --as-of '" + k_as_of + "'";
  std::filesystem::path err = t.dir() / "killed.err";
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::string cmd = std::string(LETHE_BIN) + " --config " + roomy_config(t).string() + " " +
                      args + " >/dev/null 2>" + err.string();
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 2000; ++i) {
    std::ifstream in(err);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("event=purge.batch ") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // A run that is alive is not abandoned: another job's run (migrate) leaves it alone.
  CHECK(t.lethe("migrate").exit == 0);
  CHECK(a->exec("SELECT count(*) FROM lethe.job_runs WHERE outcome = 'abandoned'").integer(0, 0) ==
        0);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  await_no_other_sessions(*a);
  long long killed_sanitized = before - rows_with_pii(*a);
  REQUIRE(killed_sanitized > 0);
  std::string killed_run =
      a->exec("SELECT run_id FROM lethe.job_runs WHERE job = 'purge' AND outcome = 'running'")
          .text(0, 0);

  test::RunResult next = t.lethe("purge --json --as-of '" + k_as_of + "'", roomy_config(t));
  INFO(next.err);
  REQUIRE(next.exit == 0);
  CHECK(next.err.find("event=run.abandoned_closed") != std::string::npos);
  CHECK(a->exec("SELECT outcome, exit_reason, finished_at IS NOT NULL FROM lethe.job_runs WHERE "
                "run_id = $1",
                {killed_run})
            .text(0, 0) == "abandoned");
  db::Rows rec = a->exec("SELECT kind, job, counts FROM lethe.audit_log WHERE run_id = $1 AND "
                         "outcome = 'abandoned'",
                         {killed_run});
  REQUIRE(rec.size() == 1);
  CHECK(rec.text(0, 0) == "run");
  CHECK(rec.text(0, 1) == "purge");
  CHECK(count_in(rec.text(0, 2), "rows_sanitized") == killed_sanitized);
  // Audited totals equal what changed: the abandoned run's rows plus the next run's.
  long long next_rows = count_in(
      a->exec("SELECT counts FROM lethe.audit_log WHERE job = 'purge' AND outcome = 'done'")
          .text(0, 0),
      "rows_sanitized");
  CHECK(killed_sanitized + next_rows == before - rows_with_pii(*a));
  CHECK(t.lethe("audit verify").exit == 0);
  // Nothing is left running, and the next job finds nothing more to close.
  CHECK(a->exec("SELECT count(*) FROM lethe.job_runs WHERE outcome = 'running'").integer(0, 0) ==
        0);
}

TEST_CASE("archive run: a run killed after its catalog commit is closed as abandoned with the "
          "orders it archived") {
  test::TestDb t("runs_archive_killed", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  long long held = s->exec("SELECT count(*) FROM lethe.pii_state_public_orders WHERE held AND "
                           "due_at <= $1::timestamptz",
                           {k_as_of})
                       .integer(0, 0);
  REQUIRE(held > 5);
  test::RunResult crashed =
      test::run_shell("LETHE_CRASH_AT=archive:recorded " LETHE_BIN " --config " +
                          t.config().string() + " archive run --as-of '" + k_as_of + "'",
                      t.dir());
  REQUIRE(crashed.exit == 99);
  await_no_other_sessions(*s);
  std::string killed_run =
      s->exec("SELECT run_id FROM lethe.job_runs WHERE job = 'archive run' AND outcome = "
              "'running'")
          .text(0, 0);
  // Any job's next run closes it: here the nightly purge.
  test::RunResult next = t.lethe("purge --as-of '" + k_as_of + "'", roomy_config(t));
  INFO(next.err);
  REQUIRE(next.exit == 0);
  db::Rows rec = s->exec("SELECT job, counts FROM lethe.audit_log WHERE run_id = $1 AND outcome = "
                         "'abandoned'",
                         {killed_run});
  REQUIRE(rec.size() == 1);
  CHECK(rec.text(0, 0) == "archive run");
  CHECK(count_in(rec.text(0, 1), "orders_archived") == held);
  CHECK(count_in(rec.text(0, 1), "orders_archived") ==
        s->exec("SELECT count(*) FROM lethe.archived_orders").integer(0, 0));
  CHECK(s->exec("SELECT outcome FROM lethe.job_runs WHERE run_id = $1", {killed_run}).text(0, 0) ==
        "abandoned");
  CHECK(t.lethe("audit verify").exit == 0);
}

TEST_CASE("job runs: a closing record that could not commit is spooled with its run, and the "
          "flush ends the run with it (not as abandoned)") {
  test::TestDb t("runs_spooled_close", 400, "2026-06-30");
  t.migrate_and_grant();
  auto s = t.admin();
  s->exec("CREATE FUNCTION public.refuse_purge_done() RETURNS trigger LANGUAGE plpgsql AS $$ "
          "BEGIN IF NEW.job = 'purge' AND NEW.outcome = 'done' THEN RAISE EXCEPTION 'refused by "
          "test'; END IF; RETURN NEW; END $$");
  s->exec("CREATE TRIGGER zz_refuse BEFORE INSERT ON lethe.audit_log FOR EACH ROW EXECUTE "
          "FUNCTION public.refuse_purge_done()");
  test::RunResult first = t.lethe("purge --as-of '" + k_as_of + "'", roomy_config(t));
  INFO(first.err);
  CHECK(first.err.find("event=audit.spooled") != std::string::npos);
  std::string run =
      s->exec("SELECT run_id FROM lethe.job_runs WHERE job = 'purge' AND outcome = 'running'")
          .text(0, 0);
  s->exec("DROP TRIGGER zz_refuse ON lethe.audit_log");

  test::RunResult next = t.lethe("purge --as-of '" + k_as_of + "'", roomy_config(t));
  INFO(next.err);
  REQUIRE(next.exit == 0);
  CHECK(next.err.find("event=audit.spool_flushed") != std::string::npos);
  db::Rows rec = s->exec(
      "SELECT outcome, details::jsonb ? 'spool_id' FROM lethe.audit_log WHERE run_id = $1", {run});
  REQUIRE(rec.size() == 1);
  CHECK(rec.text(0, 0) == "done");
  CHECK(rec.text(0, 1) == "t");
  CHECK(s->exec("SELECT outcome FROM lethe.job_runs WHERE run_id = $1", {run}).text(0, 0) ==
        "done");
  CHECK(s->exec("SELECT count(*) FROM lethe.audit_log WHERE outcome = 'abandoned'").integer(0, 0) ==
        0);
  CHECK(t.lethe("audit verify").exit == 0);
}

TEST_CASE("run scope: a failure that is not a lethe::Error closes the run as failed, with the "
          "counts that committed, at once") {
  test::TestDb t("runs_unexpected_failure", 3000, "2026-06-30");
  t.migrate_and_grant();
  auto s = t.admin();
  long long before = rows_with_pii(*s);
  // A std::runtime_error after the first committed batch: the run must not stay "running".
  test::RunResult failed = test::run_shell(
      "LETHE_THROW_AT=sanitize:batch_committed " LETHE_BIN " --config " + roomy_config(t).string() +
          " purge --workers 1 --batch-size 20 --as-of '" + k_as_of + "'",
      t.dir());
  INFO(failed.err);
  CHECK(failed.exit == 70);
  CHECK(failed.err.find("HINT:") != std::string::npos);
  long long sanitized = before - rows_with_pii(*s);
  REQUIRE(sanitized > 0);
  db::Rows run = s->exec("SELECT outcome, exit_reason, finished_at IS NOT NULL, run_id FROM "
                         "lethe.job_runs WHERE job = 'purge'");
  REQUIRE(run.size() == 1);
  CHECK(run.text(0, 0) == "failed");
  CHECK(run.text(0, 1) == "internal");
  CHECK(run.text(0, 2) == "t");
  db::Rows rec = s->exec("SELECT outcome, exit_reason, counts FROM lethe.audit_log WHERE run_id = "
                         "$1",
                         {run.text(0, 3)});
  REQUIRE(rec.size() == 1);
  CHECK(rec.text(0, 0) == "failed");
  CHECK(count_in(rec.text(0, 2), "rows_sanitized") == sanitized);
  CHECK(t.lethe("audit verify").exit == 0);
}

TEST_CASE("archive run: an exception that is not a lethe::Error closes the run as failed, with "
          "its audit record") {
  test::TestDb t("runs_archive_throw", 150, "2026-06-30");
  t.make_archive_keys();
  t.migrate_and_grant();
  auto s = t.admin();
  test::RunResult thrown =
      test::run_shell("LETHE_THROW_AT=archive:written " LETHE_BIN " --config " +
                          t.config().string() + " archive run --as-of '" + k_as_of + "'",
                      t.dir());
  INFO(thrown.err);
  REQUIRE(thrown.exit == 70);
  db::Rows run = s->exec("SELECT run_id, outcome FROM lethe.job_runs WHERE job = 'archive run'");
  REQUIRE(run.size() == 1);
  CHECK(run.text(0, 1) == "failed");
  db::Rows rec = s->exec("SELECT outcome, exit_reason FROM lethe.audit_log WHERE run_id = $1",
                         {run.text(0, 0)});
  REQUIRE(rec.size() == 1);
  CHECK(rec.text(0, 0) == "failed");
  CHECK(rec.text(0, 1) == "internal");
  CHECK(t.lethe("audit verify").exit == 0);
}

TEST_CASE("job runs: a run left running by a lethe from before schema 3 is closed with its "
          "progress marked unknown, not as zero") {
  test::TestDb t("runs_pre_schema3", 0);
  t.migrate_and_grant();
  auto s = t.admin();
  // What a pre-schema-3 binary left: no backend, no progress rows.
  std::string run = s->exec("INSERT INTO lethe.job_runs (job, actor, os_user, lethe_version) "
                            "VALUES ('purge', 'old', 'old', '0.0.9') RETURNING run_id")
                        .text(0, 0);
  REQUIRE(t.lethe("migrate").exit == 0);
  db::Rows rec = s->exec("SELECT counts, details::jsonb->>'progress' FROM lethe.audit_log WHERE "
                         "run_id = $1 AND outcome = 'abandoned'",
                         {run});
  REQUIRE(rec.size() == 1);
  CHECK(rec.text(0, 0) == "{}");
  CHECK(rec.text(0, 1).rfind("unknown", 0) == 0);
  CHECK(t.lethe("audit verify").exit == 0);
}
