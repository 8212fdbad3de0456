// `lethe request run` (hourly): erases the live rows of every registered request through the
// sanitize engine, appends the deletion ledger, and completes each request whose copies are gone.
#include "jobs/request/common.hpp"
#include "jobs/request/request.hpp"
#include "worker/audit/ledger.hpp"
#include "worker/db/clock.hpp"
#include "worker/db/store/copies.hpp"
#include "worker/db/store/requests.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/locks.hpp"
#include "worker/runtime/run_scope.hpp"
#include "worker/util/faults.hpp"
#include "worker/util/signals.hpp"

#include <algorithm>
#include <iostream>

namespace lethe::jobs::request {
namespace {

namespace store = db::store;
using runtime::Outcome;

// What one request's step in this run came to.
struct Result {
  long long id = 0;
  std::string step;   // erased, orders_remaining, interrupted, complete, waiting
  std::string detail; // for the operator
  // The engine's figures of an erase (0 for the other steps).
  long long rows = 0;
  double p99_transaction_seconds = 0;
};

// Counts of the request's erase: the sum of every linked run's committed progress.
util::Json request_counts(const std::map<std::string, long long>& progress) {
  util::Json by_table = util::Json::object();
  long long rows = 0;
  for (const auto& [item, n] : progress) {
    if (item.rfind("rows.", 0) == 0) {
      by_table[item.substr(5)] = n;
      rows += n;
    }
  }
  auto orders = progress.find("orders_done");
  return {{"orders_erased", orders == progress.end() ? 0 : orders->second},
          {"rows_erased", rows},
          {"rows_erased_by_table", by_table}};
}

util::Json copies_json(const std::vector<store::CopyRow>& copies) {
  util::Json out = util::Json::array();
  for (const store::CopyRow& c : copies) {
    out.push_back({{"kind", c.kind}, {"id", c.id}, {"state_at_erase", c.state}});
  }
  return out;
}

// The ledger entry of the erase: keyed HMACs and counts, never an identifier.
std::string ledger_entry(const store::RequestRow& r, long long run_id, const util::Json& counts,
                         const std::string& erased_at) {
  util::Json e = {{"request_id", r.id},
                  {"amazon_ref", r.amazon_ref},
                  {"action", r.action},
                  {"scope", r.scope_kind},
                  {"subjects", util::parse_json(r.subjects, "lethe.requests.subjects")},
                  {"marketplace", r.marketplace.empty() ? util::Json() : util::Json(r.marketplace)},
                  {"notice_at", r.notice_at},
                  {"erased_at", erased_at},
                  {"run_id", run_id},
                  {"counts", counts}};
  return util::dump(e);
}

// After the batches: either the request's live rows are all gone (ledger entry, state
// live_erased, the run's closing record, all in one transaction), or some orders were left
// (lock timeouts) for the next run.
Result finish_erase(Context& ctx, const sanitize::Stats& stats, runtime::RunScope& run,
                    const store::RequestRow& r, const std::string& erased_at) {
  Result res{r.id, "", ""};
  std::optional<audit::Stored> stored;
  ctx.ready_db().transact([&](db::Transaction& tx) {
    // Every resolved order picked once and erased by this run's committed batches: none is
    // left, and the join that would say so probes each one (a seller's 200,000: 0.2-0.6 s).
    bool all_erased_now = stats.orders_picked == stats.orders_done &&
                          stats.orders_done == store::request_order_count(tx, r.id);
    store::Remaining left =
        all_erased_now ? store::Remaining{} : store::orders_remaining(tx, ctx.settings(), r.id);
    util::Json details = {{"request_id", r.id}, {"amazon_ref", r.amazon_ref}};
    if (left.orders > 0) {
      details["orders_remaining"] = left.orders;
      details["orders_held_for_archive"] = left.held;
      std::string why;
      if (left.held > 0) {
        why = std::to_string(left.held) +
              " held orders wait for their archive (requests.held_orders = "
              "archive-then-erase): `lethe archive run` writes it, then the next run erases them";
      }
      if (left.orders > left.held) {
        why += std::string(why.empty() ? "" : "; ") + std::to_string(left.orders - left.held) +
               " orders were locked by other sessions; the next run erases them";
      }
      res = {r.id, "orders_remaining", why};
      stored = run.finish_in(tx, Outcome::done, "orders_remaining", stats.counts_json(),
                             util::dump(details));
      return;
    }
    util::Json counts = request_counts(store::request_progress(tx, r.id));
    util::Json copies = copies_json(store::copies_holding_request(tx, r.id));
    audit::LedgerEntry entry =
        audit::append_ledger_in(tx, r.id, ledger_entry(r, run.id(), counts, erased_at));
    store::mark_live_erased(tx, r.id, util::dump(counts), util::dump(copies), erased_at);
    details["ledger_seq"] = entry.seq;
    details["ledger_hash"] = entry.hash;
    details["request_counts"] = counts;
    details["copies"] = copies.size();
    stored =
        run.finish_in(tx, Outcome::done, "live_erased", stats.counts_json(), util::dump(details));
    res = {r.id, "erased",
           std::to_string(counts["orders_erased"].get<long long>()) + " orders, " +
               std::to_string(counts["rows_erased"].get<long long>()) + " rows erased; ledger " +
               "entry " + std::to_string(entry.seq)};
  });
  util::crash_point("request:erase_recorded");
  ctx.trail().anchor(*stored);
  audit::append_missing(ctx.settings().requests.ledger_file, audit::ledger_table(ctx.ready_db()));
  util::crash_point("request:ledger_written");
  if (res.step == "erased") {
    log::event(log::Level::info, "request.live_erased",
               {{"request_id", r.id}, {"rows", stats.total_sanitized()}});
  }
  return res;
}

// Erases every mapped row of the request's orders, deepest table first, keep tables included.
Result erase(Context& ctx, const store::RequestRow& r) {
  runtime::RunScope run(ctx, util::dump({{"request_id", r.id}}));
  ctx.ready_db().transact([&](db::Transaction& tx) {
    store::add_request_run(tx, r.id, run.id());
    if (r.state == "received") {
      store::set_state(tx, r.id, "executing");
    }
  });
  util::crash_point("request:executing");
  sanitize::Job job = request_job(ctx, run.id());
  run.counts_on_failure([&job] { return job.stats.counts_json(); });
  return run.watch([&] {
    if (r.action == "return" && r.return_file.empty()) {
      write_return(ctx, r); // the data goes to Amazon's key before it is erased
    }
    std::string erased_at = erase_orders(job, r.id, r.orders_resolved);
    if (job.stats.exit_reason == "interrupted") {
      run.finish(Outcome::interrupted, "interrupted", job.stats.counts_json(),
                 util::dump({{"request_id", r.id}}));
      return Result{r.id, "interrupted", "stopped by a signal; the next run continues"};
    }
    Result res = finish_erase(ctx, job.stats, run, r, erased_at);
    if (res.step == "orders_remaining") {
      // The rest may wait a day for its archive: what went now is vacuumed now. The run is
      // closed already; a VACUUM that fails is left to the completion, which vacuums every
      // table the request erased from that was not vacuumed since.
      try {
        sanitize::vacuum_touched_tables(job);
      } catch (const Error& e) {
        log::event(log::Level::warning, "request.vacuum_failed",
                   {{"request_id", r.id}, {"exit", exit_name(e.code())}});
      }
    }
    res.rows = job.stats.total_sanitized();
    res.p99_transaction_seconds = job.stats.p99_tx_seconds();
    return res;
  });
}

// VACUUM of every table request `id` erased rows from (`by_table`: rows per table) that was not
// vacuumed since the erase, where the role may (the owner): the dead row versions, and their
// index entries, are a copy of the erased rows. Right after the erase, and again by a later run
// when a crash or a missing privilege left one out.
void vacuum_since_erase(Context& ctx, long long id, const util::Json& by_table) {
  std::vector<std::string> names;
  for (const auto& [table, n] : by_table.items()) {
    names.push_back(table);
  }
  std::vector<std::string> left;
  ctx.ready_db().transact(
      [&](db::Transaction& tx) { left = store::tables_not_vacuumed_since_erase(tx, names, id); });
  std::vector<sanitize::TableStats> tables;
  for (const std::string& t : left) {
    tables.push_back({t, 0, 0, by_table[t].get<long long>(), 0, {}, 0, -1});
  }
  std::vector<sanitize::TableStats*> each;
  for (sanitize::TableStats& t : tables) {
    each.push_back(&t);
  }
  sanitize::vacuum_tables(ctx, each);
}

// A live_erased request is complete when no copy lethe made of its orders is still online
// (spooled archives destroyed or moved to cold storage), every copy the operator registered is
// destroyed, and every table it erased from was vacuumed since (by lethe as the owner, or by
// autovacuum), so no dead row version is left.
// The copies the erase recorded, and any archive that holds the request's orders now and is
// not among them (an archive rewritten without another request's orders still holds these):
// added to the request's list, so `request show` and the certificate name it too.
util::Json current_copies(Context& ctx, const store::RequestRow& r) {
  util::Json copies = util::parse_json(r.copies, "lethe.requests.copies");
  ctx.ready_db().transact([&](db::Transaction& tx) {
    bool added = false;
    for (const store::CopyRow& a : store::archives_holding_request(tx, r.id)) {
      bool listed = std::any_of(copies.begin(), copies.end(), [&](const util::Json& c) {
        return c["kind"] == a.kind && c["id"] == a.id;
      });
      if (!listed) {
        copies.push_back({{"kind", a.kind}, {"id", a.id}, {"added_after_erase", true}});
        added = true;
      }
    }
    if (added) {
      store::set_request_copies(tx, r.id, util::dump(copies));
    }
  });
  return copies;
}

Result try_complete(Context& ctx, const store::RequestRow& r) {
  std::vector<std::string> waiting;
  util::Json copies = current_copies(ctx, r);
  for (const util::Json& c : copies) {
    std::optional<store::CopyRow> now =
        store::find_copy(ctx.ready_db(), c["kind"].get<std::string>(), c["id"].get<std::string>());
    if (now && now->state == "spooled") {
      waiting.push_back(now->kind + " " + now->id + " (spooled)");
    }
  }
  for (const store::RegisteredCopy& c : store::registered_copies(ctx.ready_db(), r.id)) {
    if (c.destroyed_at.empty()) {
      waiting.push_back("copy " + std::to_string(c.no) + " (registered, expires " + c.expires_at +
                        ")");
    }
  }
  util::Json counts = util::parse_json(r.counts, "lethe.requests.counts");
  std::vector<std::string> tables;
  for (const auto& [table, n] : counts["rows_erased_by_table"].items()) {
    tables.push_back(table);
  }
  vacuum_since_erase(ctx, r.id, counts["rows_erased_by_table"]);
  std::optional<audit::Stored> stored;
  ctx.ready_db().transact([&](db::Transaction& tx) {
    for (const std::string& t : store::tables_not_vacuumed_since_erase(tx, tables, r.id)) {
      waiting.push_back(t + " (not vacuumed since the erase)");
    }
    if (!waiting.empty()) {
      return;
    }
    store::mark_complete(tx, r.id);
    stored = ctx.trail().append_in(
        tx, audit::Record{audit::Kind::run, "request", "done", "complete", std::nullopt, "{}",
                          util::dump({{"request_id", r.id},
                                      {"amazon_ref", r.amazon_ref},
                                      {"copies", copies.size()},
                                      {"tables_vacuumed", tables.size()}})});
  });
  if (!stored) {
    std::string detail;
    for (const std::string& w : waiting) {
      detail += (detail.empty() ? "" : ", ") + w;
    }
    return {r.id, "waiting", "copies left: " + detail};
  }
  ctx.trail().anchor(*stored);
  return {r.id, "complete", "no copy left online"};
}

void print_results(const std::vector<Result>& results, bool json) {
  if (json) {
    util::Json out = util::Json::array();
    for (const Result& r : results) {
      util::Json j = {{"request_id", r.id}, {"step", r.step}, {"detail", r.detail}};
      if (r.rows > 0) {
        j["rows_erased"] = r.rows;
        j["p99_transaction_seconds"] = r.p99_transaction_seconds;
      }
      out.push_back(j);
    }
    std::cout << util::dump(out) << "\n";
    return;
  }
  if (results.empty()) {
    std::cout << "request run: no request has work to do\n";
  }
  for (const Result& r : results) {
    std::cout << "request " << r.id << ": " << r.step << ": " << r.detail << "\n";
  }
}

} // namespace

int run_ledger_verify(Context& ctx, bool json) {
  const std::filesystem::path& path = ctx.settings().requests.ledger_file;
  std::vector<audit::LedgerEntry> table = audit::ledger_table(ctx.ready_db());
  audit::LedgerFile file = audit::read_ledger(path);
  std::string problem;
  if (!file.exists && !table.empty()) {
    problem = "the file is absent, and lethe.deletion_ledger has " + std::to_string(table.size()) +
              " entries";
  } else {
    problem = audit::ledger_problem(file, table, table.empty() ? 0 : table.back().seq);
  }
  if (json) {
    std::cout << util::dump({{"file", path.string()},
                             {"entries_in_table", table.size()},
                             {"entries_in_file", file.entries.size()},
                             {"torn_line", file.torn_line},
                             {"ok", problem.empty()},
                             {"problem", problem}})
              << "\n";
  }
  if (!problem.empty()) {
    throw Error(Exit::data, "the deletion ledger " + path.string() + ": " + problem,
                "an entry missing at the end is appended by the next `lethe request run`; "
                "anything else means the file or the table was changed: keep both as evidence "
                "and restore the file from its copy");
  }
  if (!json) {
    std::cout << "deletion ledger " << path.string() << ": " << table.size()
              << " entries, the file and lethe.deletion_ledger agree and every link holds";
    if (file.torn_line > 0) {
      std::cout << " (line " << file.torn_line << " is a torn append, cut off by the next one)";
    }
    std::cout << "\n";
  }
  return 0;
}

int run_requests(Context& ctx, const RunOptions& opt) {
  util::install_stop_handlers();
  runtime::lock_pii_writers(ctx, "request");
  db::Session& s = ctx.ready_db();
  // A ledger line that did not reach the file (full disk, crash after the commit) goes first.
  audit::append_missing(ctx.settings().requests.ledger_file, audit::ledger_table(s));
  // Only the requests with work left: finished ones are never read again, however many pile up.
  std::vector<store::RequestRow> pending;
  if (opt.request_id > 0) {
    std::optional<store::RequestRow> one = store::find_request(s, opt.request_id, std::nullopt);
    if (!one) {
      throw Error(Exit::usage, "no request " + std::to_string(opt.request_id),
                  "see `lethe request list`");
    }
    pending.push_back(*one);
  } else {
    pending = store::requests_with_work(s);
  }
  std::vector<Result> results;
  int exit = 0;
  for (const store::RequestRow& r : pending) {
    if (r.state == "received" || r.state == "executing") {
      results.push_back(erase(ctx, r));
      if (results.back().step == "interrupted") {
        exit = static_cast<int>(Exit::temporary);
        break;
      }
      std::optional<store::RequestRow> now = store::find_request(s, r.id, std::nullopt);
      if (now && now->state == "live_erased") {
        results.push_back(try_complete(ctx, *now));
      }
    } else if (r.state == "live_erased") {
      results.push_back(try_complete(ctx, r));
    }
  }
  print_results(results, opt.json);
  return exit;
}

} // namespace lethe::jobs::request
