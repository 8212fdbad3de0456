#include "jobs/audit/audit.hpp"

#include "worker/log/log.hpp"
#include "worker/util/json.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::jobs::audit {

int run_verify(Context& ctx, bool json) {
  lethe::audit::VerifyReport rep =
      lethe::audit::verify(ctx.ready_db(), ctx.settings().audit.anchor_file);
  if (!rep.warning.empty()) {
    log::event(log::Level::warning, "audit.anchor_torn", {{"detail", rep.warning}});
  }
  if (json) {
    util::Json o{{"ok", rep.ok}, {"records", rep.records}, {"anchored_seq", rep.anchored_seq}};
    if (!rep.ok) {
      o["first_broken_seq"] = rep.first_broken_seq;
      o["problem"] = rep.problem;
    }
    std::cout << util::dump(o) << "\n";
  }
  // The result is evidence too (the metrics' last verify): a broken chain is an alarm, which
  // opens an incident. It is appended after the records it checked, so it cannot hide them; a
  // failure's record is not anchored, so the anchor file stays as the verify found it (an
  // append would create an absent anchor anew, or cut a line that proves tampering).
  util::Json counts{{"records", rep.records}, {"anchored_seq", rep.anchored_seq}};
  lethe::audit::Record rec{
      lethe::audit::Kind::run, "audit verify", "done", "verified", std::nullopt, "{}", "{}"};
  if (rep.ok) {
    rec.counts = util::dump(counts);
    ctx.record(rec);
  } else {
    counts["first_broken_seq"] = rep.first_broken_seq;
    rec = {lethe::audit::Kind::alarm,
           "audit verify",
           "failed",
           "chain_broken",
           std::nullopt,
           util::dump(counts),
           "{}"};
    try {
      ctx.ready_db().transact([&](db::Transaction& tx) { ctx.trail().append_in(tx, rec); });
    } catch (const Error& e) {
      // Not lost: the next run that may insert moves it in (and opens its incident then, its
      // clock from now).
      log::event(log::Level::error, "audit.alarm_spooled", {{"error", e.what()}});
      ctx.trail().spool(rec);
    }
  }
  if (!rep.ok) {
    log::event(log::Level::error, "audit.chain_broken",
               {{"first_broken_seq", rep.first_broken_seq}, {"records", rep.records}});
    std::string where = rep.first_broken_seq > 0
                            ? " at record " + std::to_string(rep.first_broken_seq)
                            : std::string(" at its anchor");
    throw Error(Exit::data, "audit trail broken" + where + ": " + rep.problem, rep.hint);
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
    // role: the database role that inserted the record, stamped by the server ("-": a record
    // from before schema 3); actor is what the client said.
    std::printf("%6lld  %s  %-8s %-14s %-10s %-16s role=%s actor=%s counts=%s\n", s.seq,
                s.recorded_at.c_str(), lethe::audit::kind_name(s.record.kind), s.record.job.c_str(),
                s.record.outcome.c_str(), s.record.exit_reason.c_str(),
                s.db_role.empty() ? "-" : s.db_role.c_str(), s.actor.c_str(),
                s.record.counts.c_str());
  }
  return 0;
}

int run_reanchor(Context& ctx, const std::string& operator_name, const std::string& reason) {
  if (operator_name.empty() || reason.empty()) {
    throw Error(Exit::usage, "`lethe audit reanchor` needs --operator NAME and --reason TEXT",
                "say who re-anchors and why (never PII); both go into the audit trail");
  }
  lethe::audit::Stored s = lethe::audit::reanchor(ctx.ready_db(), ctx.trail(), reason);
  std::cout << "audit trail re-anchored at record " << s.seq << " by " << s.actor << " ("
            << ctx.settings().audit.anchor_file.string() << ")\n";
  return 0;
}

} // namespace lethe::jobs::audit
