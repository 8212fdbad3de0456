// `lethe request replay`: after a restore, re-applies the deletion ledger file (decision 4) to
// a database: every subject erased since finds no home there again.
#include "jobs/request/common.hpp"
#include "jobs/request/request.hpp"
#include "worker/audit/ledger.hpp"
#include "worker/db/clock.hpp"
#include "worker/db/session.hpp"
#include "worker/db/store/requests.hpp"
#include "worker/runtime/locks.hpp"
#include "worker/runtime/run_scope.hpp"

#include <iostream>
#include <map>
#include <set>

namespace lethe::jobs::request {
namespace {

namespace store = db::store;

// The configured database's connection with its dbname replaced by `target`, or `target`
// itself when it is a DSN.
std::string target_dsn(const settings::Database& configured, const std::string& target) {
  if (target.find('=') != std::string::npos) {
    return target;
  }
  if (!db::is_database_name(target)) {
    throw Error(Exit::usage, "--into-db takes a database name or a connection string",
                "e.g. --into-db orders_restored, or --into-db 'host=db2 dbname=orders'");
  }
  return db::dsn_with_dbname(configured, target);
}

// The ledger file, its chain checked, entries at or after `since` (ISO text; empty: all). No
// file and no entry in the configured database's ledger: no request was ever executed.
std::vector<audit::LedgerEntry> ledger_entries(db::Session& s, const std::filesystem::path& path,
                                               const std::string& since) {
  audit::LedgerFile file = audit::read_ledger(path);
  if (!file.exists && audit::ledger_table(s).empty()) {
    return {}; // no request was ever executed: nothing to replay
  }
  if (!file.exists) {
    throw Error(Exit::data, "the deletion ledger file " + path.string() + " does not exist",
                "replay reads requests.ledger_file; restore it from its copy first");
  }
  std::string problem = audit::ledger_problem(file, file.entries, 0);
  if (!problem.empty()) {
    throw Error(Exit::data, "the deletion ledger file " + path.string() + ": " + problem,
                "restore the file from its copy; a replay trusts nothing it cannot verify");
  }
  std::vector<audit::LedgerEntry> out;
  for (const audit::LedgerEntry& e : file.entries) {
    util::Json j = util::parse_json(e.entry, "deletion ledger entry");
    if (since.empty() || j.value("erased_at", std::string()) >= since) {
      out.push_back(e);
    }
  }
  return out;
}

struct Replayed {
  long long entry = 0;
  long long request = 0;
  long long found = 0;   // orders of the entry's subjects found again
  long long rows = 0;    // rows erased
  bool restored = false; // the entry was missing from the database's ledger
  long long left = 0;    // found orders still there (held for their archive, or locked)
};

// One entry: its request (inserted if the database predates it), the orders found again erased
// through the engine, and the ledger entry put back where the database lacked it; audited.
Replayed replay_entry(Context& ctx, const audit::LedgerEntry& e, const util::Json& j,
                      const std::vector<std::string>& keys, bool in_table) {
  long long id = j["request_id"].get<long long>();
  Replayed out{e.seq, id, static_cast<long long>(keys.size()), 0, !in_table};
  runtime::RunScope run(ctx, util::dump({{"replay_of_ledger_entry", e.seq}, {"request_id", id}}));
  ctx.ready_db().transact([&](db::Transaction& tx) {
    if (!store::request_exists(tx, id)) {
      store::insert_replayed_request(
          tx, id,
          {j["amazon_ref"], j["action"], j["scope"], util::dump(j["subjects"]),
           j["marketplace"].is_null() ? std::string() : j["marketplace"].get<std::string>(),
           j["notice_at"], "replay:" + ctx.who().actor,
           "replayed from deletion ledger entry " + std::to_string(e.seq), "", ""});
    }
    store::add_request_orders(tx, id, keys);
    store::add_request_run(tx, id, run.id());
  });
  sanitize::Job job = request_job(ctx, run.id());
  run.counts_on_failure([&job] { return job.stats.counts_json(); });
  return run.watch([&] {
    if (!keys.empty()) {
      erase_orders(job, id, static_cast<long long>(keys.size()));
      if (job.stats.exit_reason == "interrupted") {
        run.finish(runtime::Outcome::interrupted, "interrupted", job.stats.counts_json(),
                   util::dump({{"replay_of_ledger_entry", e.seq}}));
        throw Error(Exit::temporary, "the replay was stopped by a signal",
                    "run `lethe request replay` again: it finds what is left");
      }
      sanitize::vacuum_touched_tables(job);
    }
    out.rows = job.stats.total_sanitized();
    std::optional<audit::Stored> stored;
    ctx.ready_db().transact([&](db::Transaction& tx) {
      // Orders the engine left (held ones waiting for their archive, or locked) keep the
      // request open here, so `request run` finishes it; nothing says they went.
      out.left = store::orders_remaining(tx, ctx.settings(), id).orders;
      if (!in_table) {
        audit::insert_ledger_entry(tx, id, e);
      }
      if (out.left > 0) {
        store::set_state(tx, id, "executing");
      } else if (!in_table) {
        store::mark_live_erased(tx, id, util::dump(j["counts"]), "[]",
                                j.value("erased_at", std::string()));
      } else if (store::request_state(tx, id) == "complete") {
        store::drop_request_orders(tx, id); // a live_erased request keeps them until complete
      }
      stored =
          run.finish_in(tx, runtime::Outcome::done, out.left > 0 ? "orders_remaining" : "replayed",
                        job.stats.counts_json(),
                        util::dump({{"replay_of_ledger_entry", e.seq},
                                    {"request_id", id},
                                    {"orders_found_again", out.found},
                                    {"orders_remaining", out.left},
                                    {"ledger_entry_restored", out.restored}}));
    });
    ctx.trail().anchor(*stored);
    return out;
  });
}

} // namespace

int run_replay(Context& ctx, const ReplayOptions& opt) {
  util::Secret key = request_key(ctx.settings());
  std::string since;
  if (!opt.since.empty()) {
    since = db::resolve_instant(ctx.ready_db(), opt.since, "--since").iso;
  }
  std::vector<audit::LedgerEntry> entries =
      ledger_entries(ctx.ready_db(), ctx.settings().requests.ledger_file, since);
  // The target database gets its own evidence; its anchor file is the configured one only when
  // it is the configured database.
  settings::Settings target = ctx.settings();
  if (!opt.into_db.empty()) {
    target.database.dsn = target_dsn(target.database, opt.into_db);
    db::validate_dsn(target.database);
    std::string name = db::dbname_of(target.database);
    if (name != db::dbname_of(ctx.settings().database)) {
      target.audit.anchor_file += ".replay-" + (name.empty() ? std::string("db") : name);
      target.audit.spool_file += ".replay-" + (name.empty() ? std::string("db") : name);
    }
  }
  Context tctx(std::move(target), ctx.who(), "request");
  runtime::lock_pii_writers(tctx, "request");
  db::Session& s = tctx.ready_db();
  std::map<long long, util::Json> parsed;
  std::vector<store::ReplaySubject> subjects;
  for (const audit::LedgerEntry& e : entries) {
    util::Json j = util::parse_json(e.entry, "deletion ledger entry");
    for (const util::Json& h : j["subjects"]) {
      subjects.push_back(
          {e.seq, j["scope"], h.get<std::string>(),
           j["marketplace"].is_null() ? std::string() : j["marketplace"].get<std::string>()});
    }
    parsed[e.seq] = std::move(j);
  }
  std::map<long long, std::vector<std::string>> found;
  sanitize::load_key_pads(s, key);
  s.transact([&](db::Transaction& tx) {
    for (auto& [seq, order] :
         store::find_subjects(tx, tctx.settings(), subjects, sanitize::k_hmac_key_table)) {
      found[seq].push_back(order);
    }
  });
  sanitize::drop_key_pads(s);
  std::set<long long> in_table;
  for (const audit::LedgerEntry& t : audit::ledger_table(s)) {
    in_table.insert(t.seq);
  }
  std::vector<Replayed> done;
  for (const audit::LedgerEntry& e : entries) {
    bool present = in_table.count(e.seq) > 0;
    const std::vector<std::string>& keys = found[e.seq];
    if (present && keys.empty()) {
      continue;
    }
    done.push_back(replay_entry(tctx, e, parsed[e.seq], keys, present));
  }
  long long orders = 0;
  long long rows = 0;
  long long restored = 0;
  long long left = 0;
  util::Json items = util::Json::array();
  for (const Replayed& r : done) {
    orders += r.found;
    rows += r.rows;
    left += r.left;
    restored += r.restored ? 1 : 0;
    items.push_back({{"ledger_entry", r.entry},
                     {"request_id", r.request},
                     {"orders_found_again", r.found},
                     {"rows_erased", r.rows},
                     {"orders_remaining", r.left},
                     {"ledger_entry_restored", r.restored}});
  }
  if (opt.json) {
    std::cout << util::dump({{"database", db::dbname_of(tctx.settings().database)},
                             {"ledger_entries_checked", entries.size()},
                             {"orders_found_again", orders},
                             {"rows_erased", rows},
                             {"orders_remaining", left},
                             {"ledger_entries_restored", restored},
                             {"entries", items}})
              << "\n";
  } else {
    std::cout << "replay of " << entries.size() << " ledger entries into "
              << db::dbname_of(tctx.settings().database) << ": " << orders
              << " orders of deleted subjects found again (resurrected), " << rows
              << " rows erased; " << restored << " ledger entries put back into the database\n";
    if (left > 0) {
      std::cout << "  " << left << " of those orders are still there (held for their archive, "
                << "or locked): `lethe request run` finishes them\n";
    }
  }
  return 0;
}

} // namespace lethe::jobs::request
