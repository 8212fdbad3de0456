#include "jobs/audit/audit.hpp"

#include "worker/log/log.hpp"
#include "worker/util/json.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::jobs::audit {

int run_verify(Context& ctx, bool json) {
  lethe::audit::VerifyReport rep =
      lethe::audit::verify(ctx.ready_db(), ctx.settings().audit_anchor_file);
  if (!rep.warning.empty()) {
    log::event(log::Level::warning, "audit.anchor_missing", {{"detail", rep.warning}});
  }
  if (json) {
    util::JsonObject o;
    o.add("ok", rep.ok).add("records", rep.records).add("anchored_seq", rep.anchored_seq);
    if (!rep.ok) {
      o.add("first_broken_seq", rep.first_broken_seq).add("problem", rep.problem);
    }
    std::cout << o.str() << "\n";
  }
  if (!rep.ok) {
    log::event(log::Level::error, "audit.chain_broken",
               {{"first_broken_seq", rep.first_broken_seq}, {"records", rep.records}});
    throw Error(Exit::data,
                "audit trail broken at record " + std::to_string(rep.first_broken_seq) + ": " +
                    rep.problem,
                "treat this as a security incident (C18): keep the database and anchor file as "
                "they are and compare with backups");
  }
  if (!json) {
    std::cout << "audit trail intact: " << rep.records << " records, anchor file at record "
              << rep.anchored_seq << "\n";
  }
  return 0;
}

int run_show(Context& ctx, long long limit, const std::string& job, bool json) {
  std::vector<lethe::audit::Stored> rows =
      lethe::audit::show(ctx.ready_db(), lethe::audit::ShowFilter{limit, job});
  for (const lethe::audit::Stored& s : rows) {
    if (json) {
      std::cout << lethe::audit::to_json(s) << "\n";
      continue;
    }
    std::printf("%6lld  %s  %-8s %-14s %-10s %-16s actor=%s counts=%s\n", s.seq,
                s.recorded_at.c_str(), lethe::audit::kind_name(s.record.kind), s.record.job.c_str(),
                s.record.outcome.c_str(), s.record.exit_reason.c_str(), s.actor.c_str(),
                s.record.counts.c_str());
  }
  return 0;
}

} // namespace lethe::jobs::audit
