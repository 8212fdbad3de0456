// The archive catalog commands: list, expire, mark.
#include "jobs/archive/archive.hpp"
#include "jobs/archive/common.hpp"
#include "jobs/archive/reading.hpp"
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

int run_list(Context& ctx, bool json) {
  for (const Cataloged& a : db::store::archives(ctx.ready_db())) {
    if (json) {
      std::cout << util::dump({{"archive_id", a.id},
                               {"created_at", a.created_at},
                               {"state", a.state},
                               {"orders", a.orders},
                               {"size_bytes", static_cast<long long>(a.size)},
                               {"sha256", a.sha256},
                               {"retention_until", a.retention_until},
                               {"path", a.path},
                               {"destroyed_by", a.destroyed_by},
                               {"destroyed_by_role", a.destroyed_by_role}})
                << "\n";
    } else {
      std::string by = a.state == "destroyed" ? "  destroyed by " + a.destroyed_by + " (role " +
                                                    a.destroyed_by_role + ")"
                                              : std::string();
      std::printf("%-28s %-20s %-9s %8lld orders %12llu bytes  until %s%s\n", a.id.c_str(),
                  a.created_at.c_str(), a.state.c_str(), a.orders, a.size,
                  a.retention_until.c_str(), by.c_str());
    }
  }
  return 0;
}

namespace {

// Records archive `a`'s move to `state` with its audit record `r` in one transaction (the
// definer function lethe.archive_set_state refuses a move without it), then anchors the record.
void change_state(Context& ctx, const Cataloged& a, const std::string& state,
                  const audit::Record& r) {
  audit::Stored stored;
  ctx.ready_db().transact([&](db::Transaction& tx) {
    stored = ctx.trail().append_in(tx, r);
    db::store::set_archive_state(tx, a.id, state, stored.seq);
  });
  ctx.trail().anchor(stored);
}

} // namespace

void destroy_recorded(Context& ctx, const Cataloged& a, const audit::Record& rec,
                      const std::string& again, FileState file) {
  audit::Stored stored;
  bool file_gone = false;
  try {
    ctx.ready_db().transact([&](db::Transaction& tx) {
      stored = ctx.trail().append_in(tx, rec);
      try {
        db::store::set_archive_state(tx, a.id, "destroyed", stored.seq);
      } catch (const db::DbError& e) {
        throw Error(e.sqlstate() == "42501" ? Exit::permission : e.code(),
                    "the database refused to record archive " + a.id + " destroyed (SQLSTATE " +
                        e.sqlstate() + "); its file was not touched",
                    "lethe_archive needs EXECUTE on lethe.archive_set_state (apply `lethe "
                    "grants` as the owner), and the archive's retention must have ended by the "
                    "server's date (or a recorded rewrite must replace it); then run `" +
                        again + "` again");
      }
      if (file == FileState::absent) {
        file_gone = true;
        return;
      }
      vault::destroy(a.path, "archive file",
                     "fix the cause and run `" + again +
                         "` again; the catalog still lists the archive. If the file is gone "
                         "already, confirm it with `lethe archive mark-destroyed ID --operator "
                         "NAME`");
      file_gone = true;
    });
  } catch (const Error& e) {
    if (!file_gone) {
      throw;
    }
    ctx.trail().spool(audit::Record{audit::Kind::alarm, rec.job, "failed", "destroyed_not_recorded",
                                    std::nullopt, "{}", util::dump({{"archive_id", a.id}})});
    throw Error(Exit::temporary,
                "archive " + a.id +
                    " was destroyed, but its destruction could not be recorded: " + e.what(),
                "the alarm is spooled for the audit trail; when the database is back, confirm "
                "the destruction with the DBA and keep this output for the incident record; "
                "`lethe archive verify` will name the archive as missing until it is recorded");
  }
  ctx.trail().anchor(stored);
}

namespace {

// Destroys spooled archive `a` past its retention and records it in one transaction.
void expire_one(Context& ctx, const Cataloged& a) {
  destroy_recorded(ctx, a,
                   audit::Record{audit::Kind::run, "archive expire", "done", "destroyed",
                                 std::nullopt,
                                 util::dump({{"bytes", static_cast<long long>(a.size)}}),
                                 util::dump({{"archive_id", a.id},
                                             {"from", a.state},
                                             {"retention_until", a.retention_until}})},
                   "lethe archive expire");
}

} // namespace

int run_expire(Context& ctx, const std::string& as_of) {
  db::Session& s = ctx.ready_db();
  // The server's clock decides when a retention ends: --as-of may only look earlier.
  if (!as_of.empty() &&
      s.exec("SELECT ($1::timestamptz AT TIME ZONE 'UTC')::date > current_date", {as_of})
              .text(0, 0) == "t") {
    throw Error(Exit::usage, "archive expire --as-of " + as_of + " is after the database's date",
                "archives are destroyed only after their retention ends by the server's clock; "
                "leave --as-of out");
  }
  std::vector<Cataloged> due =
      db::store::archives_past_retention(s, as_of.empty() ? db::Value{} : db::Value{as_of});
  long long destroyed = 0;
  long long in_cold = 0;
  std::vector<Error> failed;
  for (const Cataloged& a : due) {
    if (a.state == "cold") {
      ++in_cold;
      ctx.record(audit::Record{
          audit::Kind::alarm, "archive expire", "action_needed", "destroy_in_cold_storage",
          std::nullopt, "{}",
          util::dump({{"archive_id", a.id}, {"retention_until", a.retention_until}})});
      std::cout << "archive " << a.id << " is past its retention (" << a.retention_until
                << ") and in cold storage: destroy it there, then run `lethe archive "
                   "mark-destroyed "
                << a.id << "`\n";
      continue;
    }
    try {
      expire_one(ctx, a);
    } catch (const Error& e) {
      if (e.code() != Exit::io && e.code() != Exit::permission) {
        throw; // destroyed and not recorded, or the database is gone: stop here
      }
      // Nothing is recorded as destroyed: the catalog keeps the archive as it was.
      ctx.record(audit::Record{audit::Kind::alarm, "archive expire", "failed", "destroy_failed",
                               std::nullopt, "{}", util::dump({{"archive_id", a.id}})});
      std::cout << "archive " << a.id << " NOT destroyed: " << e.what() << "\n";
      failed.push_back(e);
      continue;
    }
    ++destroyed;
    std::cout << "archive " << a.id << " destroyed (retention until " << a.retention_until << ")\n";
  }
  std::cout << "expired: " << destroyed << " destroyed, " << in_cold
            << " in cold storage awaiting the operator, " << failed.size() << " failed\n";
  if (failed.size() == 1) {
    throw failed.front();
  }
  if (!failed.empty()) {
    throw Error(Exit::io, std::to_string(failed.size()) + " archives could not be destroyed",
                "see the reason printed for each; fix it and run `lethe archive expire` again");
  }
  return 0;
}

int run_mark(Context& ctx, const std::string& archive_id, const std::string& state) {
  db::Session& s = ctx.ready_db();
  Cataloged a = find_archive(s, archive_id);
  if (a.state == "destroyed") {
    throw Error(Exit::data, "archive " + a.id + " is already destroyed", "nothing to mark");
  }
  if (a.state == state) {
    throw Error(Exit::data, "archive " + a.id + " is already " + state, "nothing to mark");
  }
  if (state == "destroyed" && a.state != "cold") {
    throw Error(Exit::data,
                "archive " + a.id + " is " + a.state +
                    ": mark-destroyed confirms only an archive destroyed in cold storage",
                "a spooled archive is destroyed by `lethe archive expire` once its retention "
                "ends; if it was moved to cold storage, record that first with `lethe archive "
                "mark-cold " +
                    a.id + "`");
  }
  if (state == "destroyed" && db::store::retained_today(s, a.id)) {
    throw Error(Exit::data,
                "archive " + a.id + " is retained until " + a.retention_until +
                    " by the database's date; it cannot be recorded destroyed before",
                "if it really was destroyed early, that is an incident (C18): report it; the "
                "catalog keeps the archive");
  }
  change_state(ctx, a, state,
               audit::Record{audit::Kind::manual, "archive mark", "done", state, std::nullopt, "{}",
                             util::dump({{"archive_id", a.id}, {"from", a.state}})});
  std::cout << "archive " << a.id << ": " << a.state << " -> " << state << "\n";
  return 0;
}

} // namespace lethe::jobs::archive
