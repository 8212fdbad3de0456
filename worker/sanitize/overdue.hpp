// What is overdue: PII past its deadline per PII-map table, counted through lethe's state views
// (no PII is read). Read by `lethe check` (the monitoring probe) and by the purge's plan.
#pragma once

#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"

#include <string>
#include <vector>

namespace lethe::sanitize {

// How long PII may stay past its deadline before that is a breach rather than the wait for the
// nightly purge: a day, the purge timer's jitter and its run, with a margin. `lethe check`'s
// alarm, the report's C1 and the LethePiiOverdue rule (docs/lethe-alerts.yml) use it.
inline constexpr double k_purge_cycle_hours = 26;

struct TableOverdue {
  std::string table;
  long long overdue = 0;          // rows holding PII past their deadline, not held
  long long held = 0;             // overdue rows under regulatory hold, awaiting archive
  double oldest_overdue_s = -1.0; // seconds past the deadline of the oldest overdue row
};

struct Overdue {
  std::string as_of;
  std::vector<TableOverdue> tables;
  long long overdue_total() const;
  long long held_total() const;
};

// Counts overdue PII per table as of `as_of` (an instant the database resolved). With `second`
// (another connection to the same database), the root table is counted on `session` while the
// other tables are counted on `second`: each is a scan of its table.
Overdue overdue_pii(db::Session& session, const settings::Settings& s, const std::string& as_of,
                    db::Session* second = nullptr);

} // namespace lethe::sanitize
