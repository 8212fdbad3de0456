#include "jobs/migrate/migrate.hpp"

#include "worker/db/migrations.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/run_scope.hpp"
#include "worker/util/json.hpp"

#include <iostream>

namespace lethe::jobs::migrate {

int run_migrate(Context& ctx) {
  db::MigrateOutcome o;
  try {
    o = db::migrate(ctx.db());
  } catch (const Error& e) {
    ctx.record(audit::Record{audit::Kind::refusal, ctx.job(), "refused", exit_name(e.code()),
                             std::nullopt, "{}", "{}"});
    throw;
  }
  std::string applied;
  for (int v : o.applied) {
    applied += (applied.empty() ? "" : ",") + std::to_string(v);
  }
  runtime::RunScope run(ctx, "{}");
  std::string counts =
      util::dump({{"from_version", o.from}, {"to_version", o.to}, {"applied", o.applied.size()}});
  run.finish(runtime::Outcome::done, o.applied.empty() ? "up_to_date" : "migrated", counts);
  log::event(log::Level::info, "migrate.done",
             {{"from", o.from}, {"to", o.to}, {"applied", applied.empty() ? "none" : applied}});
  std::cout << "lethe schema: version " << o.from << " -> " << o.to
            << (o.applied.empty() ? " (already up to date)" : " (applied " + applied + ")") << "\n";
  return 0;
}

} // namespace lethe::jobs::migrate
