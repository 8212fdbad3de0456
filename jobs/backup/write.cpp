// `lethe backup run`, step by step: discard what a dead run left, insert the marker, export a
// snapshot and count every table in it, stream pg_dump --snapshot through the encryption core
// into the vault (no plaintext on any disk), seal the manifest beside it, re-read both, and
// record the catalog row with its audit record in one transaction.
#include "jobs/backup/backup.hpp"
#include "jobs/backup/common.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/store/backups.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/run_scope.hpp"
#include "worker/runtime/timer.hpp"
#include "worker/util/faults.hpp"
#include "worker/util/json.hpp"
#include "worker/util/signals.hpp"
#include "worker/vault/sealed.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::jobs::backup {
namespace {

namespace store = db::store;

struct Interrupted {};

void stop_if_requested() {
  if (util::stop_requested()) {
    throw Interrupted{};
  }
}

struct BackupRun {
  explicit BackupRun(Context& c) : ctx(c) {}
  Context& ctx;
  store::BackupRow row;
  std::string server_version;
  std::string pg_dump_version;
  unsigned long long dump_plain_bytes = 0;
  std::string dump_plain_sha256;
  std::vector<std::pair<std::string, long long>> counts;
  long long orphans = 0;
  std::filesystem::file_time_type started = std::filesystem::file_time_type::clock::now();
};

// The backup id a spool file's header names, whichever part it is; empty when it names none.
std::string header_id(const std::filesystem::path& path) {
  crypto::esdk::Context label = vault::read_label(path);
  for (const char* key : {k_dump_label, k_manifest_label}) {
    auto it = label.find(key);
    if (it != label.end()) {
      return it->second;
    }
  }
  return {};
}

// Removes the files of backups that were never cataloged: a run killed before its record. A
// file is known by the id in its header, never by its name; files written during this run and
// files that name no backup and are not a pending write are left alone (and reported).
void discard_orphans(BackupRun& run) {
  const std::filesystem::path& spool = run.ctx.settings().backup.spool_dir;
  std::set<std::string> known = store::backup_ids(run.ctx.ready_db());
  for (const auto& e : std::filesystem::directory_iterator(spool)) {
    std::string name = e.path().filename().string();
    bool ours = name.find(".lethe-backup") != std::string::npos;
    if (!e.is_regular_file() || !ours) {
      continue;
    }
    std::error_code ec;
    auto written = std::filesystem::last_write_time(e.path(), ec);
    if (ec || written >= run.started) {
      continue;
    }
    std::string id = header_id(e.path());
    bool temp = name.find(".tmp-") != std::string::npos;
    if (!id.empty() && known.contains(id)) {
      continue;
    }
    if (id.empty() && !temp) {
      log::event(
          log::Level::warning, "backup.foreign_file",
          {{"file", name}, {"hint", "its header names no backup: move it out of the spool"}});
      continue;
    }
    std::filesystem::remove(e.path(), ec);
    if (ec) {
      throw Error(Exit::io, "cannot remove orphan backup file " + e.path().string(),
                  "remove it by hand or fix the spool's permissions");
    }
    ++run.orphans;
    log::event(log::Level::warning, "backup.orphan_discarded",
               {{"file", name}, {"reason", temp ? "unfinished write" : "never recorded"}});
  }
}

crypto::esdk::EncryptParams seal_params(const BackupRun& run, const vault::Recipients& rcpt,
                                        const char* label) {
  crypto::esdk::EncryptParams params;
  params.recipients = rcpt.keys;
  params.context = {{"lethe-object", "backup"},
                    {label, run.row.id},
                    {"lethe-snapshot-at", run.row.snapshot_at},
                    {"lethe-source", run.ctx.ready_db().endpoint()}};
  return params;
}

// pg_dump of the exported snapshot, its stdout streamed into the sealed dump file.
void dump(BackupRun& run, const std::string& snapshot, const vault::Recipients& rcpt) {
  const settings::Settings& s = run.ctx.settings();
  util::Secret password = db::read_password(s.database);
  util::ChildSpec spec = pg_child(s, password, s.backup.pg_dump, "pg_dump");
  spec.args = {"--format=custom", "--no-password", "--snapshot=" + snapshot,
               "--dbname=" + s.database.dsn};
  spec.read_stdout = true;
  vault::SealedWriter sealed(run.row.path, seal_params(run, rcpt, k_dump_label));
  util::Child child(spec);
  password.wipe();
  crypto::Sha256 plain;
  std::vector<unsigned char> buf(1U << 16);
  for (size_t n; (n = child.read(buf.data(), buf.size())) > 0;) {
    plain.update({reinterpret_cast<const char*>(buf.data()), n});
    sealed.write(buf.data(), n);
    run.dump_plain_bytes += n;
    if (util::stop_requested()) {
      child.kill();
      throw Interrupted{};
    }
  }
  int status = child.wait();
  if (status != 0) {
    throw Error(Exit::unavailable, child_failure(child, status) + "; no backup was recorded",
                "fix the cause and run `lethe backup run` again; the partial file is removed");
  }
  if (run.dump_plain_bytes == 0) {
    throw Error(Exit::unavailable, "pg_dump wrote nothing; no backup was recorded",
                "run pg_dump by hand as the backup role to see why");
  }
  run.dump_plain_sha256 = crypto::hex(plain.finish());
  const vault::Sealed& done = sealed.finish();
  run.row.size = done.size;
  run.row.sha256 = done.sha256;
  util::crash_point("backup:dumped");
  stop_if_requested();
  sealed.commit();
}

std::string manifest_json(const BackupRun& run) {
  util::Json tables = util::Json::object();
  for (const auto& [t, n] : run.counts) {
    tables[t] = n;
  }
  return util::dump({{"format", "lethe-backup-1"},
                     {"lethe_version", LETHE_VERSION},
                     {"backup_id", run.row.id},
                     {"source", run.ctx.ready_db().endpoint()},
                     {"snapshot_at", run.row.snapshot_at},
                     {"retention_until", run.row.retention_until},
                     {"server_version", run.server_version},
                     {"pg_dump_version", run.pg_dump_version},
                     {"dump_bytes", static_cast<long long>(run.dump_plain_bytes)},
                     {"dump_sha256", run.dump_plain_sha256},
                     {"tables", tables}});
}

void seal_manifest(BackupRun& run, const vault::Recipients& rcpt) {
  std::string text = manifest_json(run);
  vault::SealedWriter sealed(run.row.manifest_path, seal_params(run, rcpt, k_manifest_label));
  sealed.write(reinterpret_cast<const unsigned char*>(text.data()), text.size());
  const vault::Sealed& done = sealed.finish();
  run.row.manifest_size = done.size;
  run.row.manifest_sha256 = done.sha256;
  sealed.commit();
}

// The marker committed first, so the snapshot holds it; then one REPEATABLE READ transaction
// exports its snapshot, counts every table in it and stays open while pg_dump reads the same
// snapshot, so the counts and the dump agree.
void take_backup(BackupRun& run) {
  const settings::Settings& s = run.ctx.settings();
  vault::Recipients rcpt =
      vault::load_recipients(s.backup.recipients, s.backup.key_namespace, s.backup.key_name);
  run.row.recipients = rcpt.json;
  run.pg_dump_version = util::program_version(s.backup.pg_dump);
  if (run.pg_dump_version.empty()) {
    throw Error(Exit::unavailable, "cannot run " + s.backup.pg_dump + " --version",
                "install postgresql-client of the server's major version, or set backup.pg_dump");
  }
  store::insert_backup_marker(run.ctx.ready_db(), run.row.id);
  util::crash_point("backup:marked");
  run.ctx.ready_db().transact([&](db::Transaction& tx) {
    tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    db::Rows r = tx.exec("SELECT pg_export_snapshot(), to_char(statement_timestamp() AT TIME "
                         "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                         "to_char((statement_timestamp() + make_interval(days => $1::int)) AT "
                         "TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                         "current_setting('server_version')",
                         {std::to_string(s.backup.keep_days)});
    run.row.snapshot_at = r.text(0, 1);
    run.row.retention_until = r.text(0, 2);
    run.server_version = r.text(0, 3);
    {
      runtime::Timer t(run.ctx.timings(), "count");
      run.counts = store::table_row_counts(tx);
    }
    runtime::Timer t(run.ctx.timings(), "dump");
    dump(run, r.text(0, 0), rcpt);
  });
  seal_manifest(run, rcpt);
  util::crash_point("backup:renamed");
}

audit::Record written_record(const BackupRun& run) {
  long long rows = 0;
  for (const auto& [t, n] : run.counts) {
    rows += n;
  }
  const store::BackupRow& b = run.row;
  return audit::Record{audit::Kind::run,
                       run.ctx.job(),
                       "recorded",
                       "backup_written",
                       b.run_id,
                       util::dump({{"bytes", static_cast<long long>(b.size)},
                                   {"manifest_bytes", static_cast<long long>(b.manifest_size)},
                                   {"tables", static_cast<long long>(run.counts.size())},
                                   {"rows", rows}}),
                       util::dump({{"backup_id", b.id},
                                   {"sha256", b.sha256},
                                   {"manifest_sha256", b.manifest_sha256},
                                   {"snapshot_at", b.snapshot_at},
                                   {"retention_until", b.retention_until}})};
}

void record_backup(BackupRun& run) {
  util::Json counts = util::Json::object();
  for (const auto& [t, n] : run.counts) {
    counts[t] = n;
  }
  run.row.row_counts = util::dump(counts);
  audit::Stored stored;
  run.ctx.ready_db().transact([&](db::Transaction& tx) {
    stored = run.ctx.trail().append_in(tx, written_record(run));
    run.row.evidence_seq = stored.seq;
    store::insert_backup(tx, run.row);
  });
  run.ctx.trail().anchor(stored);
  util::crash_point("backup:recorded");
}

// Removes this run's files when it stops before its record (the next run would discard them
// as orphans anyway).
void remove_unrecorded(const BackupRun& run) {
  std::error_code ec;
  std::filesystem::remove(run.row.path, ec);
  std::filesystem::remove(run.row.manifest_path, ec);
}

// The run's closing lines: --json, or a few words.
void print_result(BackupRun& run, bool json) {
  if (json) {
    std::cout << util::dump({{"backup_id", run.row.id},
                             {"path", run.row.path},
                             {"bytes", static_cast<long long>(run.row.size)},
                             {"sha256", run.row.sha256},
                             {"snapshot_at", run.row.snapshot_at},
                             {"retention_until", run.row.retention_until},
                             {"tables", util::parse_json(run.row.row_counts, "row counts")},
                             {"orphans_discarded", run.orphans},
                             {"steps_seconds", run.ctx.timings().to_json()}})
              << "\n";
  } else {
    std::cout << "backup " << run.row.id << ": " << run.counts.size() << " tables, " << run.row.size
              << " bytes (encrypted), snapshot " << run.row.snapshot_at << ", kept until "
              << run.row.retention_until << "\n  " << run.row.path << "\n";
  }
}

} // namespace

int run_backup(Context& ctx, bool json) {
  util::install_stop_handlers();
  const settings::Settings& s = ctx.settings();
  if (s.backup.recipients.empty()) {
    throw Error(Exit::config, "backup.recipients names no public key",
                "make a pair with `lethe keygen`, keep the private key on the drill host and list "
                "the public key in backup.recipients");
  }
  vault::ensure_spool(s.backup.spool_dir, "backup.spool_dir");
  BackupRun run(ctx);
  run.row.id = vault::new_id("b");
  run.row.path = s.backup.spool_dir / (run.row.id + k_dump_suffix);
  run.row.manifest_path = s.backup.spool_dir / (run.row.id + k_manifest_suffix);
  runtime::RunScope scope(ctx, util::dump({{"backup_id", run.row.id}}));
  run.row.run_id = scope.id();
  scope.counts_on_failure([&run] { return util::dump({{"orphans_discarded", run.orphans}}); });
  bool recording = false; // from here a failed commit may still have recorded it
  bool stopped = scope.watch([&] {
    try {
      {
        runtime::Timer t(ctx.timings(), "discard_orphans");
        discard_orphans(run);
      }
      stop_if_requested();
      take_backup(run);
      stop_if_requested();
      runtime::Timer t(ctx.timings(), "verify_written");
      vault::check_written({run.row.path, run.row.size, run.row.sha256}, "backup " + run.row.id,
                           "check the spool file system (" + s.backup.spool_dir.string() + ")");
      vault::check_written({run.row.manifest_path, run.row.manifest_size, run.row.manifest_sha256},
                           "the manifest of backup " + run.row.id,
                           "check the spool file system (" + s.backup.spool_dir.string() + ")");
      stop_if_requested();
      recording = true;
      record_backup(run);
      return false;
    } catch (const Interrupted&) {
      return true;
    } catch (...) {
      if (!recording) {
        remove_unrecorded(run);
      }
      throw;
    }
  });
  if (stopped) {
    remove_unrecorded(run);
    scope.finish(runtime::Outcome::interrupted, "interrupted",
                 util::dump({{"orphans_discarded", run.orphans}}),
                 util::dump({{"backup_id", std::string()}}));
    std::cout << "backup: stopped by a signal; nothing was recorded\n";
    return static_cast<int>(Exit::temporary);
  }
  std::string counts = util::dump({{"bytes", static_cast<long long>(run.row.size)},
                                   {"tables", static_cast<long long>(run.counts.size())},
                                   {"orphans_discarded", run.orphans}});
  scope.finish(runtime::Outcome::done, "done", counts, util::dump({{"backup_id", run.row.id}}));
  print_result(run, json);
  log::event(log::Level::info, "backup.done",
             {{"bytes", static_cast<long long>(run.row.size)}, {"orphans_discarded", run.orphans}});
  return 0;
}

} // namespace lethe::jobs::backup
