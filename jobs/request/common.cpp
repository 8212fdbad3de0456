#include "jobs/request/common.hpp"

#include "worker/db/clock.hpp"
#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::jobs::request {

util::Secret request_key(const settings::Settings& s) {
  if (s.hmac_key_file.empty()) {
    throw Error(Exit::config,
                "deletion requests keep their identifiers as keyed HMACs, and pii.hmac_key_file "
                "is not set",
                "set pii.hmac_key_file to an owner-only file of at least 32 random bytes (the "
                "key the hmac strategy uses); keep it: the ledger is replayed with it");
  }
  return util::read_secret_file(s.hmac_key_file, "hmac key");
}

std::string state_as_of(const db::store::RequestRow& r) {
  bool live_open = r.state == "received" || r.state == "executing";
  if ((live_open && r.live_hours_left < 0) ||
      (r.state == "live_erased" && r.copies_hours_left < 0)) {
    return "overdue";
  }
  return r.state;
}

std::string fingerprint(const db::store::RequestRow& r) {
  util::Json subjects = util::parse_json(r.subjects, "lethe.requests.subjects");
  std::string fp =
      subjects.empty() ? std::string("-") : subjects[0].get<std::string>().substr(0, 12);
  if (subjects.size() > 1) {
    fp += " (+" + std::to_string(subjects.size() - 1) + ")";
  }
  return fp;
}

sanitize::Job request_job(Context& ctx, long long run_id) {
  const settings::Settings& set = ctx.settings();
  return sanitize::Job{ctx,
                       {set.purge.batch_size, static_cast<int>(set.purge.workers)},
                       db::resolve_instant(ctx.ready_db(), ""),
                       {},
                       {},
                       run_id,
                       {}};
}

std::string erase_orders(sanitize::Job& job, long long id, long long orders) {
  sanitize::plan(job, sanitize::Selection::request(id), sanitize::Action::erase);
  job.stats.candidates = orders; // an upper bound: sizes the workers
  sanitize::run_batches(job);
  std::string erased_at = job.ctx.ready_db()
                              .exec("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
                              .text(0, 0);
  return erased_at;
}

namespace {

double rounded(double hours) {
  return static_cast<double>(static_cast<long long>(hours * 10 + (hours < 0 ? -0.5 : 0.5))) / 10;
}

} // namespace

util::Json request_json(const db::store::RequestRow& r) {
  util::Json j = {{"request_id", r.id},
                  {"amazon_ref", r.amazon_ref},
                  {"action", r.action},
                  {"scope", r.scope_kind},
                  {"subject_fingerprint", fingerprint(r)},
                  {"state", state_as_of(r)},
                  {"stored_state", r.state},
                  {"notice_at", r.notice_at},
                  {"registered_at", r.registered_at},
                  {"registered_by", r.registered_by},
                  {"reason", r.reason},
                  {"orders_resolved", r.orders_resolved},
                  {"live_deadline", r.live_deadline},
                  {"live_hours_left", rounded(r.live_hours_left)},
                  {"copies_deadline", r.copies_deadline},
                  {"copies_hours_left", rounded(r.copies_hours_left)}};
  if (!r.marketplace.empty()) {
    j["marketplace"] = r.marketplace;
  }
  j["live_erased_at"] = r.live_erased_at.empty() ? util::Json() : util::Json(r.live_erased_at);
  j["completed_at"] = r.completed_at.empty() ? util::Json() : util::Json(r.completed_at);
  j["counts"] = util::parse_json(r.counts, "lethe.requests.counts");
  if (!r.cancelled_at.empty()) {
    j["cancelled_at"] = r.cancelled_at;
    j["cancelled_by"] = r.cancelled_by;
  }
  return j;
}

void print_registered(const db::store::RequestRow& r, bool json) {
  if (json) {
    std::cout << util::dump(request_json(r)) << "\n";
    return;
  }
  char live[32];
  char copies[32];
  std::snprintf(live, sizeof live, "%.1f", r.live_hours_left);
  std::snprintf(copies, sizeof copies, "%.1f", r.copies_hours_left);
  std::cout << "request " << r.id << " registered (" << r.amazon_ref << "): " << r.action << ", "
            << r.scope_kind << " " << fingerprint(r) << ", " << r.orders_resolved << " orders\n"
            << "  live data erased by " << r.live_deadline << " (" << live << " h left), every "
            << "copy gone by " << r.copies_deadline << " (" << copies << " h left)\n"
            << "  `lethe request run` (hourly) executes it\n";
}

} // namespace lethe::jobs::request
