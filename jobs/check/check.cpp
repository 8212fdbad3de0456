#include "jobs/check/check.hpp"

#include "worker/db/clock.hpp"
#include "worker/log/log.hpp"
#include "worker/sanitize/overdue.hpp"
#include "worker/util/json.hpp"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

namespace lethe::jobs::check {
namespace {

std::string format_age(double seconds) {
  if (seconds < 0) {
    return "-";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fd", seconds / 86400.0);
  return buf;
}

} // namespace

int run_check(Context& ctx, const CheckOptions& opts) {
  db::Session& session = ctx.ready_db();
  sanitize::Overdue res =
      sanitize::overdue_pii(session, ctx.settings(), db::resolve_instant(session, opts.as_of).iso);
  long long overdue = res.overdue_total();
  long long held = res.held_total();
  if (opts.json) {
    nlohmann::ordered_json tables = nlohmann::ordered_json::array();
    for (const sanitize::TableOverdue& t : res.tables) {
      tables.push_back({{"table", t.table},
                        {"overdue", t.overdue},
                        {"held_awaiting_archive", t.held},
                        {"oldest_overdue_seconds", t.oldest_overdue_s}});
    }
    nlohmann::ordered_json out = {
        {"as_of", res.as_of}, {"retention_days", ctx.settings().retention.days},
        {"overdue", overdue}, {"held_awaiting_archive", held},
        {"ok", overdue == 0}, {"tables", tables}};
    std::cout << util::dump(out) << "\n";
  } else {
    std::printf("PII past its deadline as of %s (retention %ld days after shipment)\n",
                res.as_of.c_str(), ctx.settings().retention.days);
    std::printf("  %-36s %10s %10s %12s\n", "table", "overdue", "held", "oldest");
    for (const sanitize::TableOverdue& t : res.tables) {
      std::printf("  %-36s %10lld %10lld %12s\n", t.table.c_str(), t.overdue, t.held,
                  format_age(t.oldest_overdue_s).c_str());
    }
    std::printf("%s\n", overdue == 0 ? "result: nothing overdue"
                                     : "result: PII overdue (C1) - run `lethe purge`");
  }
  log::event(overdue == 0 ? log::Level::info : log::Level::warning, "check.done",
             {{"overdue", overdue}, {"held", held}, {"as_of", res.as_of}});
  return overdue == 0 ? 0 : 1;
}

} // namespace lethe::jobs::check
