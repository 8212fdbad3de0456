// The engine's batch loop: keyset walks over the selected orders, one transaction per batch, on
// one or more connections.
#include "worker/crypto/hash.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/runs.hpp"
#include "worker/sanitize/engine.hpp"
#include "worker/util/faults.hpp"
#include "worker/util/signals.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace lethe::sanitize {
namespace {

constexpr long k_min_batch = 20;
constexpr double k_target_tx_s = 0.15; // keep each transaction well under 0.5 s
constexpr int k_lock_retries = 8;

// What one worker did; merged into RunStats at the end.
struct Tally : BatchCounters {
  std::vector<long long> sanitized; // per plan step
  std::vector<long long> batches_per_step;
};

class Worker {
public:
  Worker(Job& run, db::Session& session, int index, int count, std::atomic<bool>& abort,
         std::atomic<long long>& done)
      : m_run(run), m_s(session), m_index(index), m_count(count), m_abort(abort), m_done(done) {
    m_tally.sanitized.assign(run.plan.steps.size(), 0);
    m_tally.batches_per_step.assign(run.plan.steps.size(), 0);
  }

  // Walks this worker's share of the due orders, lane by lane; returns false when stopped by
  // a signal.
  bool walk(Progress* progress, Clock::time_point started) {
    for (const Lane& lane : m_run.plan.lanes) {
      if (!walk_lane(lane, progress, started)) {
        return false;
      }
    }
    return true;
  }

  bool walk_lane(const Lane& lane, Progress* progress, Clock::time_point started) {
    long configured = m_run.limits.batch_size;
    long size = configured;
    std::optional<std::pair<std::string, std::string>> last; // clock, key
    PlanChecks checks;
    while (true) {
      if (util::stop_requested()) {
        return false;
      }
      if (m_abort.load()) {
        return true;
      }
      db::Params params{m_run.as_of.iso, std::to_string(size), std::to_string(m_count),
                        std::to_string(m_index)};
      const std::string* sql = &lane.first;
      if (last) {
        params.push_back(last->first);
        params.push_back(last->second);
        sql = &lane.next;
      }
      check_plan(lane, *sql, params, size, last ? checks.next : checks.first, checks.warned);
      auto t0 = Clock::now();
      // The orders this batch takes, and the walk's position after them. Where the lane's
      // query is the selection's own test (Plan::lane_guards), it runs inside the batch's
      // transaction and is the guard; otherwise the guard re-checks what the lane picked.
      Picked picked;
      bool committed = false;
      if (m_run.plan.lane_guards) {
        committed = sanitize_batch(
            [&](db::Transaction& tx) {
              picked = Picked{};
              picked = pick(lane, tx.exec(*sql, params), t0);
              return picked.keys;
            },
            0);
      } else {
        picked = pick(lane, m_s.exec(*sql, params), t0);
        if (!picked.keys.empty()) {
          committed = sanitize_batch([&](db::Transaction& tx) { return guard(tx, picked.keys); },
                                     picked.keys.size());
        }
      }
      if (picked.keys.empty()) {
        return true;
      }
      m_tally.orders_picked += static_cast<long long>(picked.keys.size());
      if (committed) {
        ++m_tally.batches;
        util::crash_point("sanitize:batch_committed");
        m_tally.orders_done += m_last_guarded;
        m_done += m_last_guarded;
        log::event(log::Level::debug, "purge.batch",
                   {{"worker", m_index},
                    {"orders", picked.keys.size()},
                    {"batch_size", size},
                    {"ms", static_cast<long>(seconds_since(t0) * 1000)}});
      }
      last = picked.last;
      size = adapt(size, seconds_since(t0), configured);
      if (progress != nullptr) {
        progress->update(m_done.load(), seconds_since(started));
      }
    }
  }

  const Tally& tally() const { return m_tally; }

private:
  // A keyset query's result: the orders' keys and the last row's (clock, key).
  struct Picked {
    std::vector<db::Value> keys;
    std::optional<std::pair<std::string, std::string>> last;
  };

  Picked pick(const Lane& lane, const db::Rows& cand, Clock::time_point since) const {
    log::event(log::Level::debug, "purge.candidates",
               {{"worker", m_index},
                {"lane", lane.name},
                {"orders", cand.size()},
                {"ms", seconds_since(since) * 1000}});
    Picked p;
    p.keys.reserve(cand.size());
    for (size_t i = 0; i < cand.size(); ++i) {
      p.keys.push_back(cand.at(i, 1));
    }
    if (cand.size() > 0) {
      p.last.emplace(cand.text(cand.size() - 1, 0), cand.text(cand.size() - 1, 1));
    }
    return p;
  }

  // Of `keys`, picked before the batch's transaction began, those the selection still takes.
  std::vector<db::Value> guard(db::Transaction& tx, const std::vector<db::Value>& keys) const {
    if (m_run.plan.done_by_root_delete) {
      return keys;
    }
    db::Rows guarded = tx.exec(m_run.plan.guard, {db::array_literal(keys), m_run.as_of.iso});
    std::vector<db::Value> ids;
    ids.reserve(guarded.size());
    for (size_t i = 0; i < guarded.size(); ++i) {
      ids.push_back(guarded.at(i, 0));
    }
    return ids;
  }

  // The largest batch size each keyset query shape of a lane was checked at, and whether the
  // lane has warned.
  struct PlanChecks {
    long first = 0;
    long next = 0;
    bool warned = false;
  };

  // The plan of a keyset query can only change with its shape and its LIMIT: checked on the
  // first batch of each shape and again whenever the batch grows past the size checked
  // (`checked`); a non-index plan is reported once per lane.
  void check_plan(const Lane& lane, const std::string& sql, const db::Params& params, long size,
                  long& checked, bool& warned) {
    if (size <= checked) {
      return;
    }
    checked = size;
    if (!index_driven(sql, params) && !warned) {
      warned = true;
      log::event(log::Level::warning, "purge.plan_not_indexed",
                 {{"lane", lane.name},
                  {"batch_size", size},
                  {"hint", "index the retention clock columns (with the key) and each "
                           "child's link column"}});
    }
  }

  static long adapt(long size, double took, long configured) {
    if (took > 2 * k_target_tx_s) {
      return std::max(k_min_batch, size / 2);
    }
    if (took < k_target_tx_s / 2) {
      return std::min(configured * 8, size + size / 2);
    }
    return size;
  }

  // True when the keyset query for this batch is driven by indexes (no sequential scan, no
  // hash or merge join); the naive keyset plan flips to a hash join as batches grow.
  bool index_driven(const std::string& sql, const db::Params& params) {
    db::Rows r = m_s.exec("EXPLAIN (FORMAT JSON) " + sql, params);
    const std::string& plan = r.text(0, 0);
    ++m_tally.plan_checks;
    bool ok = plan.find("\"Seq Scan\"") == std::string::npos &&
              plan.find("\"Hash Join\"") == std::string::npos &&
              plan.find("\"Merge Join\"") == std::string::npos &&
              plan.find("Hash Semi Join") == std::string::npos;
    m_tally.plan_violations += ok ? 0 : 1;
    return ok;
  }

  // Rows of the step's table whose PII this batch changed (or that it removed), each once.
  static long long sanitize_step(db::Transaction& tx, const TableStep& st,
                                 const std::string& keys) {
    if (st.sanitize.empty()) {
      return 0;
    }
    if (st.deletes) {
      return static_cast<long long>(tx.exec(st.sanitize, {keys}).affected());
    }
    return static_cast<long long>(tx.exec(st.sanitize, {keys}).size());
  }

  // What this batch did, into the run's progress in the batch's own transaction: a killed run
  // is closed by the next with exactly the counts that committed.
  void record_progress(db::Transaction& tx, size_t orders, const std::vector<long long>& affected) {
    if (m_run.run_id <= 0) {
      return;
    }
    std::vector<std::pair<std::string, long long>> items{
        {"orders_done", static_cast<long long>(orders)}, {"batches", 1}};
    long long rows = 0;
    for (size_t i = 0; i < affected.size(); ++i) {
      if (affected[i] > 0) {
        items.emplace_back("rows." + m_run.plan.steps[i].table->table, affected[i]);
        rows += affected[i];
      }
    }
    items.emplace_back("rows_sanitized", rows);
    runtime::add_progress(tx, m_run.run_id, m_index, items);
  }

  // One batch in one transaction: `take` gives the orders the selection takes now, then
  // children first, the root last. Returns false when nothing was taken or its locks could not
  // be had after retries (the orders are left for the next run). `picked` is how many orders
  // the lane picked before the transaction (none when the lane picks inside it): when even the
  // pick cannot get its locks, there is no position to walk on from, so the lock timeout fails
  // the run as it did when the pick ran outside the transaction.
  bool sanitize_batch(const std::function<std::vector<db::Value>(db::Transaction&)>& take,
                      size_t picked) {
    size_t taken = 0;
    for (int attempt = 0;; ++attempt) {
      std::vector<long long> affected(m_run.plan.steps.size(), 0);
      auto started = Clock::now();
      taken = 0;
      try {
        m_s.transact([&](db::Transaction& tx) {
          // A batch is redone from the data if a server crash loses its commit, and the run's
          // closing record commits synchronously, flushing every batch's WAL before it
          // (docs/ARCHITECTURE.md, "Batches commit asynchronously").
          tx.exec("SET LOCAL synchronous_commit = off");
          std::vector<db::Value> ids = take(tx);
          taken = ids.size();
          if (ids.empty()) {
            return;
          }
          std::string g = db::array_literal(ids);
          for (size_t i = 0; i < m_run.plan.steps.size(); ++i) {
            const TableStep& st = m_run.plan.steps[i];
            if (st.skip) {
              continue;
            }
            auto t0 = Clock::now();
            affected[i] = sanitize_step(tx, st, g);
            log::event(log::Level::debug, "purge.step",
                       {{"worker", m_index},
                        {"table", st.table->table},
                        {"rows", affected[i]},
                        {"ms", seconds_since(t0) * 1000}});
          }
          // Orders the guard let through: one that stopped being due since it was picked is
          // not counted as done. Without a guard, the orders the root's DELETE (the last step)
          // took.
          auto done =
              m_run.plan.done_by_root_delete ? affected.back() : static_cast<long long>(ids.size());
          record_progress(tx, static_cast<size_t>(done), affected);
          m_last_guarded = done;
        });
      } catch (const db::DbError& e) {
        if (!e.lock_timeout()) {
          throw;
        }
        if (attempt + 1 >= k_lock_retries) {
          if (taken == 0 && picked == 0) {
            throw;
          }
          taken = std::max(taken, picked);
          m_tally.skipped_locked += static_cast<long long>(taken);
          log::event(log::Level::warning, "purge.batch_skipped",
                     {{"orders", taken}, {"reason", "lock_timeout"}});
          return false;
        }
        ++m_tally.lock_retries;
        auto backoff = std::chrono::milliseconds(100L << std::min(attempt, 5));
        log::event(log::Level::notice, "purge.lock_backoff",
                   {{"attempt", attempt + 1}, {"ms", static_cast<long>(backoff.count())}});
        std::this_thread::sleep_for(backoff);
        continue;
      }
      if (taken == 0) {
        return false;
      }
      m_tally.tx_seconds.push_back(seconds_since(started));
      for (size_t i = 0; i < affected.size(); ++i) {
        m_tally.sanitized[i] += affected[i];
        m_tally.batches_per_step[i] += affected[i] > 0 ? 1 : 0;
      }
      return true;
    }
  }

  Job& m_run;
  db::Session& m_s;
  int m_index;
  int m_count;
  std::atomic<bool>& m_abort;
  std::atomic<long long>& m_done;
  long long m_last_guarded = 0; // orders the last committed batch's guard let through
  Tally m_tally;
};

void merge(Job& run, const Tally& t) {
  Stats& st = run.stats;
  st.add(t);
  for (size_t i = 0; i < run.plan.steps.size(); ++i) {
    TableStats* ts = st.find(run.plan.steps[i].table->table);
    ts->sanitized += t.sanitized[i];
    ts->batches += t.batches_per_step[i];
  }
}

} // namespace

void prepare_session(db::Session& s, const Plan& p) {
  // Index-driven plans only: every batch statement is a key lookup, and a hash join over a
  // whole child table would hold the batch's locks for as long as the scan takes.
  s.exec("SET enable_hashjoin = off");
  s.exec("SET enable_mergejoin = off");
  s.exec("SET enable_seqscan = off");
  if (!p.lane_guards) {
    // A request's lane walks lethe.request_orders in key order, LIMIT one batch. Right after
    // `request add` filled it, its statistics still say it is nearly empty, and the planner
    // read every remaining key of the request and sorted them for each batch (a seller's
    // 200,000 orders: 40 ms a batch, growing with the request). In key order, the index is
    // read only as far as the batch goes, whatever the statistics say.
    s.exec("SET enable_sort = off");
    s.exec("SET enable_bitmapscan = off");
    s.exec("SET max_parallel_workers_per_gather = 0");
  }
}

void release_session(db::Session& s) {
  for (const char* setting :
       {"enable_hashjoin", "enable_mergejoin", "enable_seqscan", "enable_sort", "enable_bitmapscan",
        "max_parallel_workers_per_gather"}) {
    s.exec(std::string("RESET ") + setting);
  }
}

// Hex digits of `n` bytes at `p`, into `out` at `at`.
static void put_hex(char* out, std::size_t at, const unsigned char* p, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    out[at + 2 * i] = digits[p[i] >> 4];
    out[at + 2 * i + 1] = digits[p[i] & 15];
  }
}

// The COPY text line of the hmac key's pads: \\x<ipad hex> TAB \\x<opad hex> (bytea hex input,
// backslash escaped), RFC 2104: a key longer than the hash's 64-byte block is hashed first,
// then zero-padded.
static util::Secret key_pads_line(const util::Secret& key) {
  constexpr std::size_t block = 64;
  unsigned char k[block] = {};
  if (key.size() > block) {
    crypto::Digest d = crypto::sha256(key.view());
    std::copy(d.begin(), d.end(), k);
    util::wipe_bytes(d.data(), d.size());
  } else {
    std::copy(key.view().begin(), key.view().end(), k);
  }
  unsigned char ipad[block];
  unsigned char opad[block];
  for (std::size_t i = 0; i < block; ++i) {
    ipad[i] = static_cast<unsigned char>(k[i] ^ 0x36);
    opad[i] = static_cast<unsigned char>(k[i] ^ 0x5c);
  }
  util::Secret line = util::Secret::with_capacity(2 * (3 + 2 * block) + 1);
  char* out = line.data();
  std::size_t n = 0;
  for (const unsigned char* pad : {ipad, opad}) {
    out[n++] = '\\';
    out[n++] = '\\';
    out[n++] = 'x';
    put_hex(out, n, pad, block);
    n += 2 * block;
    out[n++] = pad == ipad ? '\t' : '\n';
  }
  line.resize(n);
  util::wipe_bytes(k, block);
  util::wipe_bytes(ipad, block);
  util::wipe_bytes(opad, block);
  return line;
}

void load_key_pads(db::Session& s, const util::Secret& key) {
  if (key.empty()) {
    throw Error(Exit::config, "the PII map uses hmac but no hmac key was read",
                "set pii.hmac_key_file to the key file; `lethe config check` shows the map");
  }
  util::Secret line = key_pads_line(key);
  try {
    s.exec(std::string("CREATE TEMPORARY TABLE IF NOT EXISTS ") + k_hmac_key_table +
           " (ipad bytea NOT NULL, opad bytea NOT NULL)");
  } catch (const db::DbError& e) {
    if (e.sqlstate() != "42501") {
      throw;
    }
    throw Error(Exit::permission,
                "the role may not create the temporary table the hmac strategy needs",
                "apply `lethe grants` as the database owner: it grants TEMPORARY on the database "
                "to the job roles when the PII map has hmac columns");
  }
  s.transact([&](db::Transaction& tx) {
    tx.exec(std::string("TRUNCATE ") + k_hmac_key_table);
    bool sent = false;
    tx.copy_in_data(std::string("COPY ") + k_hmac_key_table + " FROM STDIN",
                    [&](std::string& chunk) {
                      if (!sent) {
                        chunk.assign(line.view());
                        sent = true;
                      }
                      return false;
                    });
  });
}

void drop_key_pads(db::Session& s) noexcept {
  try {
    s.exec(std::string("DROP TABLE IF EXISTS ") + k_hmac_key_table);
  } catch (...) {
    // The session's end drops it too.
  }
}

// Runs the workers; wipes nothing (run_batches does, on every path).
static void walk_all(Job& run) {
  int workers = run.limits.workers;
  workers = static_cast<int>(
      std::max<long long>(1, std::min<long long>(workers, run.stats.candidates / 1000 + 1)));
  bool hmac = std::any_of(run.plan.steps.begin(), run.plan.steps.end(),
                          [](const TableStep& st) { return st.hmac && !st.skip; });
  if (hmac) {
    load_key_pads(run.ctx.ready_db(), run.hmac_key);
  }
  std::vector<std::unique_ptr<db::Session>> extra;
  for (int i = 1; i < workers; ++i) {
    extra.push_back(db::connect(run.ctx.settings()));
    prepare_session(*extra.back(), run.plan);
    if (hmac) {
      load_key_pads(*extra.back(), run.hmac_key);
    }
    if (run.run_id > 0) {
      runtime::join_run(*extra.back(), run.run_id);
    }
  }
  std::atomic<bool> abort{false};
  std::atomic<long long> done{0};
  std::vector<std::unique_ptr<Worker>> pool;
  pool.push_back(std::make_unique<Worker>(run, run.ctx.ready_db(), 0, workers, abort, done));
  for (int i = 1; i < workers; ++i) {
    pool.push_back(
        std::make_unique<Worker>(run, *extra[static_cast<size_t>(i - 1)], i, workers, abort, done));
  }
  Progress progress(run.stats.candidates);
  auto started = Clock::now();
  std::mutex failed_mutex;
  std::exception_ptr failed;
  std::atomic<bool> interrupted{false};
  auto body = [&](size_t i) {
    try {
      if (!pool[i]->walk(i == 0 ? &progress : nullptr, started)) {
        interrupted = true;
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failed_mutex);
      if (!failed) {
        failed = std::current_exception();
      }
      abort = true;
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < pool.size(); ++i) {
    threads.emplace_back(body, i);
  }
  body(0);
  for (std::thread& t : threads) {
    t.join();
  }
  progress.finish();
  for (const auto& w : pool) {
    merge(run, w->tally());
  }
  run.stats.seconds = seconds_since(started);
  if (hmac) {
    drop_key_pads(run.ctx.ready_db());
  }
  run.stats.workers = workers;
  if (failed) {
    std::rethrow_exception(failed);
  }
  if (interrupted) {
    run.stats.exit_reason = "interrupted";
  } else {
    run.stats.exit_reason = run.stats.skipped_locked > 0 ? "done_with_skips" : "done";
  }
}

void run_batches(Job& job) {
  try {
    walk_all(job);
  } catch (...) {
    job.hmac_key.wipe();
    throw;
  }
  job.hmac_key.wipe();
  release_session(job.ctx.ready_db());
}

} // namespace lethe::sanitize
