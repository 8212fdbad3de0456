// `lethe drill run` and `lethe restore`: a backup restored into a new database with pg_restore
// fed from the decrypting stream (no plaintext file), then proven, check by check: the catalog
// and the files agree with the audit record, the manifest opens, the restore completes, the
// backup's marker is there, every table holds the manifest's row count, the deletion ledger
// replayed since the backup finds the erased subjects (reported) and then none, and nothing was
// overdue as of the backup. A drill drops its scratch database, also on failure; a restore
// keeps it, with the ledger replayed before anyone uses it. Each is recorded with its RTO.
#include "jobs/backup/backup.hpp"
#include "jobs/backup/common.hpp"
#include "worker/crypto/esdk.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/clock.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/run_scope.hpp"
#include "worker/runtime/timer.hpp"
#include "worker/sanitize/overdue.hpp"
#include "worker/util/faults.hpp"
#include "worker/util/json.hpp"

#include <chrono>
#include <iostream>
#include <random>
#include <unistd.h>

namespace lethe::jobs::backup {
namespace {

namespace store = db::store;
using Clock = std::chrono::steady_clock;

// A check that failed: its name and lethe's words for what went wrong.
struct CheckFailed {
  std::string check;
  std::string why;
  bool timed_out = false;
};

struct Drill {
  Drill(Context& c, const DrillOptions& o, store::BackupRow b)
      : ctx(c), opt(o), backup(std::move(b)) {}
  Context& ctx;
  const DrillOptions& opt;
  store::BackupRow backup;
  std::string database;
  settings::Settings server; // the drill server's maintenance database
  settings::Settings target; // the scratch (or restored) database
  Clock::time_point t0 = Clock::now();
  Clock::time_point deadline;
  double restore_s = 0;
  double checks_s = 0;
  long long resurrected = -1; // orders of erased subjects found before the replay
  long long after_replay = -1;
  long long overdue = -1;
  bool created = false;
  bool kept = false;
};

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void check_deadline(const Drill& d, const char* check) {
  if (Clock::now() > d.deadline) {
    throw CheckFailed{check, "drill.timeout_s passed", true};
  }
}

store::BackupRow choose(Context& ctx, const DrillOptions& opt) {
  std::vector<store::BackupRow> usable;
  for (const store::BackupRow& b : store::backups(ctx.ready_db())) {
    if (b.state == "spooled" && (opt.backup_id.empty() || b.id == opt.backup_id)) {
      usable.push_back(b);
    }
  }
  if (!opt.backup_id.empty() && usable.empty()) {
    throw Error(Exit::data, "no spooled backup " + opt.backup_id + " in the catalog",
                "`lethe backup list` shows the backups and their state");
  }
  if (usable.empty()) {
    throw Error(Exit::data, "the catalog has no spooled backup to restore",
                "run `lethe backup run` first");
  }
  if (opt.random_within_days <= 0) {
    return usable.back(); // the newest
  }
  std::vector<store::BackupRow> recent =
      store::spooled_backups_within(ctx.ready_db(), opt.random_within_days);
  if (recent.empty()) {
    throw Error(Exit::data,
                "no spooled backup was taken within " + std::to_string(opt.random_within_days) +
                    " days",
                "check that the lethe-backup timer runs; `lethe backup list`");
  }
  std::random_device rd;
  return recent[rd() % recent.size()];
}

// The drill server's maintenance database and the target database, as settings lethe connects
// with (the same password source and TLS settings as [database]).
void place(Drill& d) {
  const settings::Settings& s = d.ctx.settings();
  d.server = s;
  if (!s.drill.dsn.empty()) {
    d.server.database.dsn = s.drill.dsn;
  } else {
    d.server.database.dsn = db::dsn_with_dbname(s.database, "postgres");
  }
  db::validate_dsn(d.server.database);
  d.target = d.server;
  d.target.database.dsn = db::dsn_with_dbname(d.server.database, d.database);
}

void drop_database(const Drill& d, const std::string& name) {
  runtime::Timer step(d.ctx.timings(), "drop");
  std::unique_ptr<db::Session> s = db::connect(d.server);
  s->exec("DROP DATABASE IF EXISTS " + db::quote_ident(name) + " WITH (FORCE)");
  // The replay's evidence for that database was anchored beside the configured anchor.
  std::error_code ec;
  const settings::Settings& cfg = d.ctx.settings();
  std::filesystem::remove(cfg.audit.anchor_file.string() + ".replay-" + name, ec);
  std::filesystem::remove(cfg.audit.spool_file.string() + ".replay-" + name, ec);
}

// "lethe_drill_<8 hex digits of the source database's endpoint>_": one drill server may serve
// several order databases, and each cleans up only its own scratch databases.
std::string scratch_prefix(Context& ctx) {
  return "lethe_drill_" + crypto::hex(crypto::sha256(ctx.ready_db().endpoint())).substr(0, 8) + "_";
}

// Scratch databases earlier drills left: kept for drill.keep_hours and now due, or left by a
// drill that was killed before it could drop its own (its run is no longer running).
void drop_leftovers(const Drill& d, long long self) {
  std::set<std::string> kept =
      store::drill_databases_kept(d.ctx.ready_db(), d.ctx.settings().drill.keep_hours);
  std::vector<std::string> found;
  {
    std::unique_ptr<db::Session> server = db::connect(d.server);
    found = store::scratch_databases(*server, scratch_prefix(d.ctx));
  }
  for (const std::string& name : found) {
    long long run = std::stoll(name.substr(scratch_prefix(d.ctx).size()));
    if (run == self || kept.contains(name) || store::run_is_running(d.ctx.ready_db(), run)) {
      continue;
    }
    drop_database(d, name);
    log::event(log::Level::notice, "drill.leftover_dropped", {{"database", name}});
  }
}

void restore(Drill& d, const BackupKey& key, const Manifest& m) {
  auto t = Clock::now();
  {
    runtime::Timer step(d.ctx.timings(), "create");
    std::unique_ptr<db::Session> s = db::connect(d.server);
    try {
      s->exec("CREATE DATABASE " + db::quote_ident(d.database) + " TEMPLATE template0");
    } catch (const db::DbError& e) {
      throw CheckFailed{"restore", "cannot create database " + d.database + " (SQLSTATE " +
                                       e.sqlstate() +
                                       "): it exists already, or the role may not create "
                                       "databases"};
    }
    d.created = true;
  }
  runtime::Timer step(d.ctx.timings(), "restore");
  util::Secret password = db::read_password(d.target.database);
  util::ChildSpec spec =
      pg_child(d.target, password, d.ctx.settings().backup.pg_restore, "pg_restore");
  spec.args = {"--no-owner",           "--no-privileges", "--exit-on-error",
               "--single-transaction", "--no-password",   "--dbname=" + d.target.database.dsn};
  spec.feed_stdin = true;
  util::Child child(spec);
  password.wipe();
  child.set_deadline(d.deadline);
  Streamed got;
  int status = 0;
  try {
    got = stream_dump(d.backup, key, &child, false);
    status = child.wait();
  } catch (const util::ChildTimedOut&) {
    throw CheckFailed{"restore", "drill.timeout_s passed during pg_restore", true};
  } catch (const crypto::esdk::FormatError& e) {
    throw CheckFailed{"restore", std::string("the backup file does not decrypt: ") + e.what()};
  }
  if (status != 0) {
    throw CheckFailed{"restore", child_failure(child, status)};
  }
  if (!got.complete || got.bytes != m.dump_bytes || got.sha256 != m.dump_sha256) {
    throw CheckFailed{"restore", "the decrypted dump's length or SHA-256 differs from its "
                                 "manifest"};
  }
  d.restore_s = since(t);
}

void check_counts(const Drill& d, db::Session& s, const Manifest& m) {
  std::vector<std::pair<std::string, long long>> got = store::table_row_counts(s);
  std::map<std::string, long long> have(got.begin(), got.end());
  std::vector<std::string> differ;
  for (const auto& [table, n] : m.tables) {
    auto it = have.find(table);
    if (it == have.end() || it->second != n) {
      differ.push_back(table + " (" + std::to_string(n) + " in the manifest, " +
                       (it == have.end() ? std::string("missing") : std::to_string(it->second)) +
                       " restored)");
    }
  }
  if (!differ.empty() || got.size() != m.tables.size()) {
    std::string list;
    for (const std::string& t : differ) {
      list += (list.empty() ? "" : ", ") + t;
    }
    throw CheckFailed{"row_counts", list.empty() ? "the restore has tables the manifest does not "
                                                   "list"
                                                 : list};
  }
  (void)d;
}

// `lethe request replay` of the ledger since the backup, run as this binary with the same
// configuration: its orders_found_again (the subjects a restore would resurrect).
long long replay(const Drill& d) {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    throw CheckFailed{"ledger_replay", "cannot find the lethe binary to run the replay"};
  }
  self[n] = '\0';
  util::ChildSpec spec;
  spec.program = self;
  spec.what = "lethe request replay";
  spec.args = {"request",        "replay",
               "--config",       d.ctx.settings().source.string(),
               "--into-db",      d.target.database.dsn,
               "--since",        d.backup.snapshot_at,
               "--json",         "--operator",
               d.ctx.who().actor};
  spec.read_stdout = true;
  util::Child child(spec);
  child.set_deadline(d.deadline);
  std::string out;
  unsigned char buf[4096];
  int status = 0;
  try {
    for (size_t got; (got = child.read(buf, sizeof buf)) > 0;) {
      out.append(reinterpret_cast<const char*>(buf), got);
    }
    status = child.wait();
  } catch (const util::ChildTimedOut&) {
    throw CheckFailed{"ledger_replay", "drill.timeout_s passed during the replay", true};
  }
  if (status != 0) {
    // lethe's own words (never a value): its error line.
    const std::string& err = child.stderr_text();
    size_t at = err.find("lethe: error: ");
    std::string said =
        at == std::string::npos ? std::string() : err.substr(at + 14, err.find('\n', at) - at - 14);
    throw CheckFailed{"ledger_replay", "`lethe request replay` exited with status " +
                                           std::to_string(status) +
                                           (said.empty() ? std::string() : ": " + said)};
  }
  try {
    return util::parse_json(out, "replay output").at("orders_found_again").get<long long>();
  } catch (const std::exception&) {
    throw CheckFailed{"ledger_replay", "`lethe request replay` printed no result"};
  }
}

void run_checks(Drill& d, const Manifest& m) {
  auto t = Clock::now();
  std::unique_ptr<db::Session> s = db::connect(d.target);
  if (d.opt.restore) {
    // pg_restore leaves no planner statistics; a database restored for use needs them. (A
    // drill's scratch database is dropped: measured at a million orders, ANALYZE cost 1.3 s and
    // did not speed its checks.)
    runtime::Timer step(d.ctx.timings(), "analyze");
    s->exec("ANALYZE");
  }
  if (!store::has_backup_marker(*s, d.backup.id)) {
    throw CheckFailed{"marker", "the restored database lacks backup " + d.backup.id +
                                    "'s marker row: it is not that backup"};
  }
  check_deadline(d, "row_counts");
  {
    runtime::Timer step(d.ctx.timings(), "row_counts");
    check_counts(d, *s, m);
  }
  check_deadline(d, "ledger_replay");
  {
    runtime::Timer step(d.ctx.timings(), "ledger_replay");
    d.resurrected = replay(d);
    d.after_replay = replay(d);
  }
  if (d.after_replay != 0) {
    throw CheckFailed{"ledger_replay", std::to_string(d.after_replay) +
                                           " orders of erased subjects are still there after the "
                                           "replay"};
  }
  check_deadline(d, "overdue");
  runtime::Timer step(d.ctx.timings(), "overdue");
  // As `lethe check` would have seen it at the snapshot; what fell due within the purge's
  // cadence before it is reported, what was late by more fails the drill. One pass: the oldest
  // overdue row per table says whether anything is late; only then are the late rows counted.
  const settings::Settings& cfg = d.ctx.settings();
  std::unique_ptr<db::Session> second = db::connect(d.target);
  sanitize::Overdue at = sanitize::overdue_pii(*s, cfg, d.backup.snapshot_at, second.get());
  d.overdue = at.overdue_total();
  double grace_s = static_cast<double>(cfg.drill.overdue_grace_hours) * 3600.0;
  long long late = 0;
  for (const sanitize::TableOverdue& table : at.tables) {
    if (table.oldest_overdue_s > grace_s) {
      late += table.overdue; // counted again below, exactly
    }
  }
  if (late > 0) {
    std::string late_from =
        db::hours_before(*s, d.backup.snapshot_at, cfg.drill.overdue_grace_hours).iso;
    late = sanitize::overdue_pii(*s, cfg, late_from, second.get()).overdue_total();
  }
  if (late > 0) {
    throw CheckFailed{"overdue", std::to_string(late) +
                                     " rows held PII more than drill.overdue_grace_hours past "
                                     "their deadline when the backup was taken"};
  }
  d.checks_s = since(t);
}

util::Json drill_details(const Drill& d, const std::optional<CheckFailed>& failed) {
  util::Json j = {{"backup_id", d.backup.id},
                  {"database", d.database},
                  {"snapshot_at", d.backup.snapshot_at},
                  {"failed_check", failed ? failed->check : std::string()},
                  {"why", failed ? failed->why : std::string()},
                  {"orders_resurrected_before_replay", d.resurrected},
                  {"orders_resurrected_after_replay", d.after_replay},
                  {"overdue_rows_at_backup", d.overdue}};
  if (d.opt.restore) {
    j["reason"] = d.opt.reason;
  }
  return j;
}

std::string result_of(const std::optional<CheckFailed>& failed) {
  if (!failed) {
    return "SUCCESSFUL";
  }
  return failed->timed_out ? "TIMED_OUT" : "FAILED";
}

// The drill row and the run's closing record (its evidence) commit in one transaction of the
// catalog's database; a drill that did not succeed adds an alarm record.
void record(Drill& d, runtime::RunScope& scope, const std::optional<CheckFailed>& failed,
            const std::string& started_at, double rto) {
  std::string result = result_of(failed);
  std::string reason = result == "SUCCESSFUL" ? "successful"
                       : result == "FAILED"   ? "failed"
                                              : "timed_out";
  util::Json details = drill_details(d, failed);
  store::DrillRow row;
  row.kind = d.opt.restore ? "restore" : "drill";
  row.backup_id = d.backup.id;
  row.run_id = scope.id();
  row.started_at = started_at;
  row.restore_s = d.restore_s > 0 ? std::optional<double>(d.restore_s) : std::nullopt;
  row.checks_s = d.checks_s > 0 ? std::optional<double>(d.checks_s) : std::nullopt;
  row.rto_s = failed ? std::nullopt : std::optional<double>(rto);
  row.result = result;
  row.failed_check = failed ? failed->check : std::string();
  row.database = d.database;
  row.kept = d.kept;
  row.details = util::dump(details);
  util::Json counts = {{"restore_seconds", d.restore_s},
                       {"checks_seconds", d.checks_s},
                       {"rto_seconds", rto},
                       {"orders_resurrected_before_replay", d.resurrected}};
  audit::Stored last;
  d.ctx.ready_db().transact([&](db::Transaction& tx) {
    last = scope.finish_in(tx, failed ? runtime::Outcome::failed : runtime::Outcome::done, reason,
                           util::dump(counts), util::dump(details));
    row.evidence_seq = last.seq;
    store::insert_drill(tx, row);
    if (failed) {
      last = d.ctx.trail().append_in(tx, audit::Record{audit::Kind::alarm, d.ctx.job(), "failed",
                                                       "drill_" + reason, std::nullopt,
                                                       util::dump(counts), util::dump(details)});
    }
  });
  d.ctx.trail().anchor(last);
}

void print(const Drill& d, const std::optional<CheckFailed>& failed, double rto) {
  if (d.opt.json) {
    util::Json j = drill_details(d, failed);
    j["result"] = result_of(failed);
    j["restore_seconds"] = d.restore_s;
    j["checks_seconds"] = d.checks_s;
    j["rto_seconds"] = rto;
    j["database_kept"] = d.kept;
    j["steps_seconds"] = d.ctx.timings().to_json();
    std::cout << util::dump(j) << "\n";
    return;
  }
  std::cout << (d.opt.restore ? "restore" : "drill") << " of backup " << d.backup.id << " into "
            << d.database << ": " << result_of(failed);
  if (failed) {
    std::cout << " at check " << failed->check << ": " << failed->why << "\n";
  } else {
    std::cout << " in " << rto << " s (restore " << d.restore_s << " s, checks " << d.checks_s
              << " s)\n  marker found; every table holds the manifest's row count; ledger "
                 "replay: "
              << d.resurrected << " orders of erased subjects found again and erased, 0 after; "
              << d.overdue << " rows of PII were due at the backup, none later than "
              << "drill.overdue_grace_hours\n";
  }
  std::cout << "  database " << d.database << (d.kept ? " kept" : " dropped") << "\n";
  if (d.opt.restore && d.kept) {
    std::cout << "  before anyone uses it: run `lethe purge` with a configuration pointing at "
              << d.database << ", so the PII that fell due since the backup goes\n";
  }
}

void refuse_bad_restore(const DrillOptions& opt) {
  if (!opt.restore) {
    return;
  }
  if (opt.reason.empty() || opt.operator_name.empty()) {
    throw Error(Exit::usage, "a restore needs --operator NAME and --reason TEXT",
                "they go into the audit trail: who recovered data, and why (never PII)");
  }
  if (!db::is_database_name(opt.into_db)) {
    throw Error(Exit::usage, "--into-db takes the name of a new database",
                "lower-case letters, digits and _ (at most 63), e.g. --into-db orders_restored");
  }
}

// Every check, in order; the first that fails ends them.
void checks(Drill& d, const BackupKey& key) {
  std::string problem = evidence_problem(d.ctx.ready_db(), d.backup);
  if (!problem.empty()) {
    throw CheckFailed{"evidence", problem};
  }
  Manifest m;
  try {
    m = read_manifest(d.backup, key);
  } catch (const crypto::esdk::FormatError& e) {
    throw CheckFailed{"manifest", std::string("it does not decrypt: ") + e.what()};
  } catch (const Error& e) {
    if (e.code() != Exit::data && e.code() != Exit::io) {
      throw;
    }
    throw CheckFailed{"manifest", e.what()};
  }
  check_deadline(d, "restore");
  restore(d, key, m);
  util::crash_point("drill:restored");
  run_checks(d, m);
}

} // namespace

int run_drill(Context& ctx, const DrillOptions& opt) {
  refuse_bad_restore(opt);
  std::unique_ptr<BackupKey> key = load_backup_key(ctx.settings(), opt.private_key);
  Drill d(ctx, opt, choose(ctx, opt));
  d.deadline = d.t0 + std::chrono::seconds(ctx.settings().drill.timeout_s);
  std::string started_at = db::resolve_instant(ctx.ready_db(), "").iso;
  runtime::RunScope scope(ctx, util::dump({{"backup_id", d.backup.id}}));
  d.database = opt.restore ? opt.into_db : scratch_prefix(ctx) + std::to_string(scope.id());
  place(d);
  std::optional<CheckFailed> failed;
  scope.watch([&] {
    drop_leftovers(d, scope.id());
    try {
      checks(d, *key);
    } catch (const CheckFailed& f) {
      failed = f;
    } catch (...) {
      if (d.created && !opt.restore) {
        drop_database(d, d.database); // always, also when the drill breaks
      }
      throw;
    }
    // A drill's database is dropped unless drill.keep_hours keeps it for inspection; a
    // restore's is kept when it passed every check, and dropped when it did not (nobody must
    // use a restore whose ledger replay or counts failed).
    d.kept = d.created && (opt.restore ? !failed : ctx.settings().drill.keep_hours > 0);
    if (d.created && !d.kept) {
      drop_database(d, d.database);
    }
    double rto = since(d.t0);
    record(d, scope, failed, started_at, rto);
    print(d, failed, rto);
  });
  log::event(failed ? log::Level::warning : log::Level::info, "drill.done",
             {{"backup_id", d.backup.id},
              {"result", result_of(failed)},
              {"failed_check", failed ? failed->check : std::string()}});
  if (failed) {
    throw Error(Exit::failure,
                std::string(opt.restore ? "restore" : "drill") + " of backup " + d.backup.id + " " +
                    result_of(failed) + " at check " + failed->check,
                failed->timed_out ? "raise drill.timeout_s, or drill on a faster drill server"
                                  : "the backup cannot be trusted for a recovery: keep its files "
                                    "for the incident record (C18), make a new backup and drill "
                                    "it");
  }
  return 0;
}

int run_drill_list(Context& ctx, bool json) {
  std::vector<store::DrillRow> all = store::drills(ctx.ready_db());
  auto num = [](const std::optional<double>& v) { return v ? util::Json(*v) : util::Json(); };
  if (json) {
    util::Json out = util::Json::array();
    for (const store::DrillRow& r : all) {
      out.push_back({{"drill_id", r.id},
                     {"kind", r.kind},
                     {"backup_id", r.backup_id},
                     {"started_at", r.started_at},
                     {"finished_at", r.finished_at},
                     {"result", r.result},
                     {"failed_check", r.failed_check},
                     {"restore_seconds", num(r.restore_s)},
                     {"checks_seconds", num(r.checks_s)},
                     {"rto_seconds", num(r.rto_s)},
                     {"database", r.database},
                     {"database_kept", r.kept},
                     {"details", util::json_or_text(r.details)}});
    }
    std::cout << util::dump(out) << "\n";
    return 0;
  }
  for (const store::DrillRow& r : all) {
    std::cout << r.id << "  " << r.kind << "  " << r.backup_id << "  " << r.finished_at << "  "
              << r.result << (r.failed_check.empty() ? "" : " (" + r.failed_check + ")")
              << (r.rto_s ? "  RTO " + std::to_string(*r.rto_s) + " s" : std::string()) << "\n";
  }
  if (all.empty()) {
    std::cout << "no drills recorded\n";
  }
  return 0;
}

} // namespace lethe::jobs::backup
