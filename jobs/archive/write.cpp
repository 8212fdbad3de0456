// `lethe archive run`, step by step (decision 3 in DESIGN.md): write under a temporary name,
// fsync, rename, fsync the directory, re-read and check, record in the catalog, and only then
// sanitize the archived orders.
#include "jobs/archive/archive.hpp"
#include "jobs/archive/common.hpp"
#include "jobs/archive/manifest.hpp"
#include "worker/archive/tar.hpp"
#include "worker/crypto/esdk.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/catalog.hpp"
#include "worker/db/clock.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/db/store/archives.hpp"
#include "worker/db/store/requests.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/locks.hpp"
#include "worker/runtime/run_scope.hpp"
#include "worker/runtime/runs.hpp"
#include "worker/runtime/timer.hpp"
#include "worker/sanitize/engine.hpp"
#include "worker/util/faults.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"
#include "worker/util/signals.hpp"
#include "worker/vault/sealed.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>

namespace lethe::jobs::archive {
namespace {

constexpr const char* k_keys_table = "pg_temp.lethe_archive_keys";

struct Member {
  std::string name;
  std::string table;
  long long rows = 0;
  std::string sha256;
};

struct Written {
  std::string id;
  std::filesystem::path path;
  std::string retention_until;
  long long orders = 0;
  unsigned long long size = 0;
  std::string sha256;
  std::vector<Member> members;
  std::string recipients_json;
  std::string row_counts_json;
};

struct ArchiveRun {
  Context& ctx;
  const RunOptions& opt;
  db::Instant as_of;
  Written w;
  long long orphans = 0;
  long long run_id = 0;
  runtime::RunScope* scope = nullptr; // the run's bookkeeping, once begun
  std::filesystem::file_time_type started = std::filesystem::file_time_type::clock::now();
  bool recorded = false;
};

// Thrown between steps once SIGTERM/SIGINT arrived: the step in progress is rolled back.
struct Interrupted {};

void stop_if_requested() {
  if (util::stop_requested()) {
    throw Interrupted{};
  }
}

// Whether the file at `path` was last written before `started` (this run holds the archive
// lock, so only an earlier run can have written it).
bool written_before(const std::filesystem::path& path, std::filesystem::file_time_type started) {
  std::error_code ec;
  auto t = std::filesystem::last_write_time(path, ec);
  return !ec && t < started;
}

void discard(ArchiveRun& run, const std::filesystem::path& path, const char* reason) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (ec) {
    throw Error(Exit::io,
                "cannot remove orphan archive file " + path.string() + ": " + ec.message(),
                "remove it by hand or fix the spool's permissions");
  }
  ++run.orphans;
  log::event(log::Level::warning, "archive.orphan_discarded",
             {{"file", path.filename().string()}, {"reason", reason}});
}

// Removes spool files a run that died before recording its archive left. A file is identified
// by its unencrypted header (the archive id and source database in the encryption context),
// never by its path: a file whose archive the catalog names is kept, however the spool is
// spelled; one from another database, or whose header says nothing, is left alone and reported;
// only this database's uncataloged archives written before this run are discarded. The one
// exception is a temporary file (the pending-write name) whose header is incomplete: the write
// died before the header was whole, so it holds nothing any key can decrypt.
void discard_orphans(ArchiveRun& run) {
  ensure_spool(run.ctx.settings());
  std::set<std::string> known = cataloged_ids(run.ctx.ready_db());
  const std::string self = run.ctx.ready_db().endpoint();
  std::filesystem::path spool = std::filesystem::canonical(run.ctx.settings().archive.spool_dir);
  for (const auto& e : std::filesystem::directory_iterator(spool)) {
    std::string name = e.path().filename().string();
    bool temp = name.find(std::string(k_archive_suffix) + ".tmp-") != std::string::npos;
    if (!e.is_regular_file() || (!temp && !name.ends_with(k_archive_suffix))) {
      continue;
    }
    FileHeader h = read_header(e.path());
    if (!h.archive_id.empty() && known.contains(h.archive_id)) {
      continue; // recorded: never an orphan, whatever its name
    }
    if (!written_before(e.path(), run.started)) {
      continue;
    }
    if (h.archive_id.empty() && temp) {
      discard(run, e.path(), "unfinished write");
    } else if (!h.archive_id.empty() && h.source == self) {
      discard(run, e.path(), temp ? "unfinished write" : "never recorded");
    } else {
      log::event(log::Level::warning, "archive.foreign_file",
                 {{"file", name},
                  {"hint", h.source.empty()
                               ? "its header names no lethe source: move it out of the spool"
                               : "archive.spool_dir is shared with another database: give each "
                                 "its own"}});
    }
  }
}

// "k1, k2, …": the typed key columns of the keys table, for a key of `n` columns.
std::string key_columns(size_t n) {
  std::string out;
  for (size_t i = 1; i <= n; ++i) {
    out += (i > 1 ? ", k" : "k") + std::to_string(i);
  }
  return out;
}

// The held orders whose PII is due, and those a deletion request names (requests.held_orders =
// archive-then-erase: archived now, erased by the request), into a session temp table (no keys
// held in memory).
long long select_held_orders(ArchiveRun& run, db::Transaction& tx) {
  const settings::Settings& s = run.ctx.settings();
  const settings::PiiTable& root = s.root.table;
  tx.exec(std::string("DROP TABLE IF EXISTS ") + k_keys_table);
  // k1..kn: the key's typed columns, which the member queries match; order_key: its canonical
  // text, as lethe.archived_orders records it.
  std::string typed;
  for (size_t i = 0; i < root.key.size(); ++i) {
    typed += "r." + db::quote_ident(root.key[i]) + " AS k" + std::to_string(i + 1) + ", ";
  }
  tx.exec(std::string("CREATE TEMP TABLE lethe_archive_keys AS SELECT ") + typed +
          db::key_text_sql("r", root.key) + " AS order_key FROM " + db::state_view(root.table) +
          " r WHERE r.held AND (r.due_at <= " + db::quote_literal(run.as_of.iso) +
          "::timestamptz OR " + db::store::requested_order_sql(db::key_text_sql("r", root.key)) +
          ")");
  tx.exec(std::string("ANALYZE ") + k_keys_table); // the member queries join it
  return tx.exec(std::string("SELECT count(*) FROM ") + k_keys_table).integer(0, 0);
}

std::string manifest_json(const ArchiveRun& run, const std::vector<TableColumns>& tables) {
  util::Json members = util::Json::array();
  for (const Member& m : run.w.members) {
    members.push_back(
        {{"name", m.name}, {"table", m.table}, {"rows", m.rows}, {"sha256", m.sha256}});
  }
  return util::dump({{"format", "lethe-archive-1"},
                     {"lethe_version", LETHE_VERSION},
                     {"archive_id", run.w.id},
                     {"pii_map_digest", settings::pii_map_digest(run.ctx.settings())},
                     {"source", run.ctx.ready_db().endpoint()},
                     {"as_of", run.as_of.iso},
                     {"retention_until", run.w.retention_until},
                     {"orders", run.w.orders},
                     {"tables", tables_to_json(tables)},
                     {"members", members},
                     {"recipients", util::parse_json(run.w.recipients_json, "recipients")}});
}

// Streams table `t`'s rows of the selected orders into CSV members of at most
// archive.member_mib (the first with the header line) into `tar`; returns the rows.
long long archive_table(ArchiveRun& run, db::Transaction& tx, lethe::archive::TarWriter& tar,
                        const settings::PiiTable& t) {
  const settings::Settings& s = run.ctx.settings();
  const size_t limit = static_cast<size_t>(s.archive.member_mib) << 20;
  std::string buffer;
  buffer.reserve(limit + (64U << 10)); // one member and the row that fills it: never regrown
  long long rows = 0;
  long long table_rows = 0;
  int part = 0;
  bool header = true;
  auto flush = [&]() {
    Member m;
    char name[32];
    std::snprintf(name, sizeof name, "/part-%05d.csv", ++part);
    m.name = t.table + name;
    m.table = t.table;
    m.rows = rows;
    m.sha256 = crypto::hex(crypto::sha256(buffer));
    tar.add(m.name, buffer);
    run.w.members.push_back(m);
    buffer.clear();
    rows = 0;
  };
  std::string where = db::rows_of_orders(s, t, "x", [&s](const std::string& columns) {
    return columns + " IN (SELECT " + key_columns(s.root.table.key.size()) + " FROM " +
           std::string(k_keys_table) + ")";
  });
  auto t0 = std::chrono::steady_clock::now();
  tx.copy_out("COPY (SELECT x.* FROM " + db::quote_ident(t.table) + " x WHERE " + where +
                  ") TO STDOUT WITH (FORMAT csv, HEADER true)",
              [&](std::string_view row) {
                buffer.append(row);
                if (header) {
                  header = false; // the first line names the columns
                } else {
                  ++rows;
                  ++table_rows;
                }
                if (buffer.size() >= limit) {
                  flush();
                }
              });
  if (!buffer.empty() || part == 0) {
    flush();
  }
  log::event(log::Level::debug, "archive.table",
             {{"table", t.table},
              {"rows", table_rows},
              {"members", part},
              {"ms", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() *
                         1000}});
  return table_rows;
}

// Streams each PII-map table's rows of the selected orders into members of at most
// archive.member_mib, through tar+zstd and the encryption core, into a pending spool file.
void write_archive(ArchiveRun& run, db::Transaction& tx) {
  const settings::Settings& s = run.ctx.settings();
  Written& w = run.w;
  w.id = vault::new_id("a");
  w.path = s.archive.spool_dir / (w.id + k_archive_suffix);
  w.retention_until =
      tx.exec("SELECT ((($1::timestamptz AT TIME ZONE 'UTC')::date) + make_interval(years => "
              "$2::int))::date::text",
              {run.as_of.iso, std::to_string(s.hold.archive_years)})
          .text(0, 0);
  Recipients rcpt = load_recipients(s);
  w.recipients_json = rcpt.json;
  vault::SealedWriter sealed(
      w.path, archive_params(rcpt, w.id, w.retention_until, run.ctx.ready_db().endpoint()));
  lethe::archive::TarWriter tar([&](const unsigned char* p, size_t n) { sealed.write(p, n); });

  std::vector<TableColumns> tables = table_columns(tx, s);
  tar.add("tables.json", util::dump(tables_to_json(tables))); // first: a restore creates them
  util::Json counts = util::Json::object();
  for (const settings::PiiTable* t : s.pii_tables()) {
    counts[t->table] = archive_table(run, tx, tar, *t);
  }
  w.row_counts_json = util::dump(counts);
  tar.add("manifest.json", manifest_json(run, tables));
  tar.finish();
  const vault::Sealed& done = sealed.finish();
  w.size = done.size;
  w.sha256 = done.sha256;
  util::crash_point("archive:written");
  stop_if_requested(); // before the rename: the pending file goes with `sealed`
  sealed.commit();     // fsync, rename, fsync the directory
  util::crash_point("archive:renamed");
}

// Reads the file back from disk: its length and SHA-256 must be what was written.
void verify_written(ArchiveRun& run) {
  vault::check_written({run.w.path, run.w.size, run.w.sha256}, "archive " + run.w.id,
                       "check the spool file system (" +
                           run.ctx.settings().archive.spool_dir.string() + "); nothing was purged");
  util::crash_point("archive:verified");
}

audit::Record written_record(const ArchiveRun& run) {
  const Written& w = run.w;
  return audit::Record{
      audit::Kind::run,
      run.ctx.job(),
      "recorded",
      "archive_written",
      run.run_id,
      util::dump({{"orders", w.orders},
                  {"bytes", static_cast<long long>(w.size)},
                  {"members", static_cast<long>(w.members.size())}}),
      util::dump(
          {{"archive_id", w.id}, {"sha256", w.sha256}, {"retention_until", w.retention_until}})};
}

// The catalog row, its archive_written audit record and the archived orders commit in one
// transaction (decision 10): an archive without its evidence cannot exist, and without both no
// order is released to the sanitizer. lethe.archive_orders checks the record is there.
void record_archive(ArchiveRun& run) {
  const Written& w = run.w;
  audit::Stored stored;
  try {
    run.ctx.ready_db().transact([&](db::Transaction& tx) {
      db::store::insert_archive(tx,
                                {w.id, run.run_id, w.path.string(), w.size, w.sha256, run.as_of.iso,
                                 w.retention_until, settings::pii_map_digest(run.ctx.settings()),
                                 w.recipients_json, w.row_counts_json, w.orders});
      stored = run.ctx.trail().append_in(tx, written_record(run));
      db::store::record_archived_orders(tx, w.id, stored.seq, k_keys_table);
      runtime::add_progress(tx, run.run_id, -1,
                            {{"orders_archived", w.orders},
                             {"bytes", static_cast<long long>(w.size)},
                             {"members", static_cast<long long>(w.members.size())}});
    });
  } catch (const db::DbError& e) {
    if (e.sqlstate() == "08007") {
      throw; // the commit is in doubt: "nothing was recorded" may be false
    }
    // The server's text may carry values: only lethe's words and the SQLSTATE are shown.
    throw Error(Exit::temporary,
                "archive " + w.id + " could not be recorded with its audit record (SQLSTATE " +
                    e.sqlstate() + "); nothing was recorded and no order was sanitized",
                "check that " + run.ctx.who().actor +
                    "'s role may insert into lethe.audit_log and lethe.archives (`lethe grants`) "
                    "and that no trigger refuses it, then run `lethe archive run` again; the "
                    "unrecorded file is discarded as an orphan");
  }
  run.recorded = true;
  run.ctx.trail().anchor(stored);
  util::crash_point("archive:recorded");
}

// Ends a run stopped by SIGTERM/SIGINT: an archive not yet recorded is rolled back (its file
// removed, nothing in the catalog); a recorded one stays, and the next run sanitizes the orders
// this one did not reach. Exit 75, as the purge.
int interrupted(ArchiveRun& run, long long rows_sanitized = 0) {
  if (!run.recorded && !run.w.path.empty()) {
    std::error_code ec;
    std::filesystem::remove(run.w.path, ec); // else the next run discards it as an orphan
  }
  run.scope->finish(runtime::Outcome::interrupted, "interrupted",
                    util::dump({{"orders_archived", run.recorded ? run.w.orders : 0},
                                {"rows_sanitized", rows_sanitized},
                                {"orphans_discarded", run.orphans}}),
                    util::dump({{"archive_id", run.recorded ? run.w.id : std::string{}},
                                {"as_of", run.as_of.iso}}));
  std::cout << "archive: stopped by a signal; "
            << (run.recorded ? "archive " + run.w.id +
                                   " is recorded, the next run sanitizes "
                                   "the rest of its orders"
                             : std::string("nothing was recorded"))
            << "\n";
  log::event(log::Level::notice, "archive.interrupted", {{"recorded", run.recorded}});
  return static_cast<int>(Exit::temporary);
}

// The last step: every due order an archive holds (this run's, and any an earlier run
// archived but did not get to sanitize) is sanitized through the engine, then the touched
// tables are vacuumed. The caller holds the PII writers' lock.
sanitize::Stats sanitize_archived(ArchiveRun& run) {
  const settings::Settings& s = run.ctx.settings();
  sanitize::Job job{run.ctx,   {s.purge.batch_size, static_cast<int>(s.purge.workers)},
                    run.as_of, {},
                    {},        run.run_id,
                    {}};
  sanitize::plan(job, sanitize::Selection::archived_due(), sanitize::Action::sanitize);
  sanitize::count(job);
  sanitize::load_hmac_key(job);
  sanitize::run_batches(job);
  sanitize::vacuum_touched_tables(job);
  return job.stats;
}

// The archive's steps up to its record; returns their seconds. Throws Interrupted on a stop.
double archive_steps(ArchiveRun& run) {
  auto started = std::chrono::steady_clock::now();
  auto step = [&](const char* name, const std::function<void()>& f) {
    runtime::Timer t(run.ctx.timings(), name);
    f();
  };
  step("discard_orphans", [&] { discard_orphans(run); });
  stop_if_requested();
  run.ctx.ready_db().transact([&](db::Transaction& tx) {
    // One snapshot for every table, so the members agree with each other.
    tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    step("select_held_orders", [&] { run.w.orders = select_held_orders(run, tx); });
    if (run.w.orders > 0) {
      step("write_archive", [&] { write_archive(run, tx); });
    }
  });
  if (run.w.orders > 0) {
    stop_if_requested();
    step("verify_written", [&] { verify_written(run); });
    stop_if_requested();
    step("record_archive", [&] { record_archive(run); });
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

// The archive run's closing lines: --json, or a few words.
void print_result(const ArchiveRun& run, const std::string& reason,
                  const sanitize::Stats& sanitized, double write_s) {
  if (run.opt.json) {
    std::cout << util::dump(
                     {{"exit_reason", reason},
                      {"archive_id", run.w.id},
                      {"path", run.w.path.string()},
                      {"orders_archived", run.w.orders},
                      {"bytes", static_cast<long long>(run.w.size)},
                      {"sha256", run.w.sha256},
                      {"retention_until", run.w.retention_until},
                      {"rows", util::json_or_text(
                                   run.w.row_counts_json.empty() ? "{}" : run.w.row_counts_json)},
                      {"rows_sanitized", sanitized.total_sanitized()},
                      {"orphans_discarded", run.orphans},
                      {"seconds_archive", write_s},
                      {"seconds_sanitize", sanitized.seconds},
                      {"steps_seconds", run.ctx.timings().to_json()}})
              << "\n";
  } else if (run.w.orders == 0) {
    std::cout << "archive as of " << run.as_of.iso << ": no held order is due\n";
  } else {
    std::cout << "archive " << run.w.id << ": " << run.w.orders << " held orders, "
              << run.w.members.size() << " members, " << run.w.size << " bytes, sha256 "
              << run.w.sha256.substr(0, 16) << "…, kept until " << run.w.retention_until << "\n  "
              << run.w.path.string() << "\n  then sanitized " << sanitized.total_sanitized()
              << " rows\n";
  }
}

} // namespace

int run_archive(Context& ctx, const RunOptions& opt) {
  util::install_stop_handlers();
  ArchiveRun run{ctx, opt, {}, {}, 0, 0};
  runtime::lock_pii_writers(ctx, "archive");
  run.started = std::filesystem::file_time_type::clock::now();
  run.as_of = db::resolve_instant(ctx.ready_db(), opt.as_of);
  if (run.as_of.future) {
    throw Error(Exit::usage, "--as-of " + run.as_of.iso + " is in the future",
                "archive as of now or an instant in the past");
  }
  if (ctx.settings().hold.predicate.empty()) {
    std::cout << "archive: hold.predicate is empty, so no order is held and nothing is archived\n";
    return 0;
  }
  if (ctx.settings().archive.recipients.empty()) {
    throw Error(Exit::config, "archive.recipients names no public key",
                "make a pair with `lethe keygen`, keep the private key offline and list the "
                "public key in archive.recipients");
  }
  // Before anything is written: the held orders are chosen through the state views.
  db::require_current_state_views(ctx.ready_db(), ctx.settings());
  runtime::RunScope scope(ctx, util::dump({{"as_of", run.as_of.iso}}));
  run.run_id = scope.id();
  run.scope = &scope;
  scope.counts_on_failure([&run] { return util::dump({{"orphans_discarded", run.orphans}}); });
  sanitize::Stats sanitized;
  double write_s = 0;
  bool stopped = scope.watch([&] {
    try {
      write_s = archive_steps(run);
      runtime::Timer t(run.ctx.timings(), "sanitize_archived");
      sanitized = sanitize_archived(run);
      return false;
    } catch (const Interrupted&) {
      return true;
    }
  });
  if (stopped) {
    return interrupted(run);
  }
  if (sanitized.exit_reason == "interrupted") {
    return interrupted(run, sanitized.total_sanitized());
  }
  std::string counts = util::dump({{"orders_archived", run.w.orders},
                                   {"bytes", static_cast<long long>(run.w.size)},
                                   {"members", static_cast<long>(run.w.members.size())},
                                   {"rows_sanitized", sanitized.total_sanitized()},
                                   {"orphans_discarded", run.orphans}});
  std::string reason = run.w.orders == 0 ? "nothing_held" : "done";
  scope.finish(runtime::Outcome::done, reason, counts,
               util::dump({{"archive_id", run.w.id}, {"as_of", run.as_of.iso}}));
  print_result(run, reason, sanitized, write_s);
  log::event(log::Level::info, "archive.done",
             {{"orders", run.w.orders},
              {"bytes", static_cast<long long>(run.w.size)},
              {"orphans_discarded", run.orphans}});
  return 0;
}

} // namespace lethe::jobs::archive
