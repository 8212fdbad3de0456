#include "worker/runtime/locks.hpp"

namespace lethe::runtime {

void lock_pii_writers(Context& ctx, const std::string& job) {
  // The key keeps its historic name, so a new binary and an old one still exclude each other.
  db::Rows r = ctx.ready_db().exec("SELECT pg_try_advisory_lock(hashtext('lethe.purge'))");
  if (r.text(0, 0) != "t") {
    ctx.record(
        audit::Record{audit::Kind::refusal, job, "refused", "lock_held", std::nullopt, "{}", "{}"});
    throw Error(Exit::temporary, "another lethe purge or archive run is working on this database",
                "wait for it to finish; the timer runs the " + job + " again");
  }
}

} // namespace lethe::runtime
