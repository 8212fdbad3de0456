// `lethe request list` and `lethe request show`: state, both deadlines with hours left, counts
// per table and every copy with its state. Identifiers appear only as fingerprints.
#include "jobs/request/common.hpp"
#include "jobs/request/request.hpp"
#include "worker/db/clock.hpp"
#include "worker/db/store/copies.hpp"
#include "worker/db/store/requests.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::jobs::request {
namespace {

namespace store = db::store;

std::string hours(double h) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f h", h);
  return buf;
}

db::Value instant(Context& ctx, const std::string& as_of) {
  return db::resolve_instant(ctx.ready_db(), as_of).iso;
}

// The copies the erase found, each with its state now.
util::Json copies_now(Context& ctx, const store::RequestRow& r) {
  util::Json out = util::Json::array();
  for (const util::Json& c : util::parse_json(r.copies, "lethe.requests.copies")) {
    std::optional<store::CopyRow> now =
        store::find_copy(ctx.ready_db(), c["kind"].get<std::string>(), c["id"].get<std::string>());
    util::Json j = c;
    j["state"] = now ? util::Json(now->state) : util::Json("unknown");
    if (now) {
      j["retention_until"] = now->retention_until;
    }
    out.push_back(j);
  }
  return out;
}

} // namespace

int run_list(Context& ctx, const std::string& as_of, bool json) {
  std::vector<store::RequestRow> rows = store::requests(ctx.ready_db(), instant(ctx, as_of));
  if (json) {
    util::Json out = util::Json::array();
    for (const store::RequestRow& r : rows) {
      out.push_back(request_json(r));
    }
    std::cout << util::dump(out) << "\n";
    return 0;
  }
  if (rows.empty()) {
    std::cout << "no deletion request is registered\n";
    return 0;
  }
  std::printf("%-5s %-22s %-7s %-7s %-12s %-11s %8s %-34s %s\n", "ID", "AMAZON REF", "ACTION",
              "SCOPE", "FINGERPRINT", "STATE", "ORDERS", "LIVE DATA BY (LEFT)",
              "EVERY COPY BY (LEFT)");
  for (const store::RequestRow& r : rows) {
    std::string live = r.live_deadline + " (" + hours(r.live_hours_left) + ")";
    std::string copies = r.copies_deadline + " (" + hours(r.copies_hours_left) + ")";
    std::printf("%-5lld %-22s %-7s %-7s %-12s %-11s %8lld %-34s %s\n", r.id, r.amazon_ref.c_str(),
                r.action.c_str(), r.scope_kind.c_str(), fingerprint(r).substr(0, 12).c_str(),
                state_as_of(r).c_str(), r.orders_resolved, live.c_str(), copies.c_str());
  }
  std::fflush(stdout);
  return 0;
}

int run_show(Context& ctx, long long id, const std::string& as_of, bool json) {
  std::optional<store::RequestRow> r = store::find_request(ctx.ready_db(), id, instant(ctx, as_of));
  if (!r) {
    throw Error(Exit::usage, "no request " + std::to_string(id), "see `lethe request list`");
  }
  util::Json j = request_json(*r);
  j["copies"] = copies_now(ctx, *r);
  util::Json registered = util::Json::array();
  for (const store::RegisteredCopy& c : store::registered_copies(ctx.ready_db(), id)) {
    registered.push_back(
        {{"copy", c.no},
         {"what", c.what},
         {"expires_at", c.expires_at},
         {"registered_by", c.registered_by},
         {"destroyed_at", c.destroyed_at.empty() ? util::Json() : util::Json(c.destroyed_at)},
         {"outlives_deadline", c.outlives_deadline}});
  }
  j["registered_copies"] = registered;
  if (json) {
    std::cout << util::dump(j) << "\n";
    return 0;
  }
  std::cout << "request " << r->id << " (" << r->amazon_ref << "): " << r->action << ", "
            << r->scope_kind << " " << fingerprint(*r);
  if (!r->marketplace.empty()) {
    std::cout << " in marketplace " << r->marketplace;
  }
  std::cout << "\n  state        " << state_as_of(*r) << "\n  notice       " << r->notice_at
            << "\n  registered   " << r->registered_at << " by " << r->registered_by << " ("
            << r->reason << ")\n  live data    by " << r->live_deadline << " ("
            << hours(r->live_hours_left) << " left)";
  if (!r->live_erased_at.empty()) {
    std::cout << ", erased " << r->live_erased_at;
  }
  std::cout << "\n  every copy   by " << r->copies_deadline << " (" << hours(r->copies_hours_left)
            << " left)";
  if (!r->completed_at.empty()) {
    std::cout << ", complete " << r->completed_at;
  }
  if (!r->cancelled_at.empty()) {
    std::cout << "\n  cancelled    " << r->cancelled_at << " by " << r->cancelled_by;
  }
  std::cout << "\n  orders       " << r->orders_resolved << " resolved";
  const util::Json& counts = j["counts"];
  if (counts.contains("orders_erased")) {
    std::cout << ", " << counts["orders_erased"].get<long long>() << " erased";
    for (const auto& [table, n] : counts["rows_erased_by_table"].items()) {
      std::cout << "\n    " << table << ": " << n.get<long long>() << " rows erased";
    }
  }
  std::cout << "\n  copies       " << (j["copies"].empty() ? "none held these orders" : "");
  for (const util::Json& c : j["copies"]) {
    std::cout << "\n    " << c["kind"].get<std::string>() << " " << c["id"].get<std::string>()
              << ": " << c["state"].get<std::string>();
  }
  for (const util::Json& c : j["registered_copies"]) {
    std::cout << "\n    copy " << c["copy"].get<int>() << " (" << c["what"].get<std::string>()
              << "): "
              << (c["destroyed_at"].is_null()
                      ? "exists, expires " + c["expires_at"].get<std::string>() +
                            (c["outlives_deadline"].get<bool>() ? " AFTER the deadline" : "")
                      : "destroyed " + c["destroyed_at"].get<std::string>());
  }
  std::cout << "\n";
  return 0;
}

} // namespace lethe::jobs::request
