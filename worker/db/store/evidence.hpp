// What the record of processing (`lethe inventory`, C16) and the auditor's report (`lethe report`)
// read from lethe's own tables and the catalog: counts, clocks, names and hashes, never a PII
// value. The only place with their SQL; each function returns the data as JSON, which is what
// `--format json` prints and what the HTML is drawn from, so both carry the same numbers.
#pragma once

#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"
#include "worker/util/json.hpp"

#include <string>
#include <vector>

namespace lethe::db::store {

// `lethe check` as of now: one sample per table (name, overdue, held, oldest overdue seconds or
// a negative number for none).
struct OverdueSample {
  std::string table;
  long long overdue = 0;
  long long held = 0;
  double oldest_overdue_s = -1;
};
void record_overdue_samples(Session& s, const std::vector<OverdueSample>& samples);

// The instants `from` and `to` as the server reads them (UTC ISO 8601), and now; Error(usage)
// naming the option when one cannot be read or from is not before to.
struct Period {
  std::string from;
  std::string to;
  std::string generated_at;
};
Period resolve_period(Session& s, const std::string& from, const std::string& to);

// Per table of the map: rows holding PII now (from the state views), rows in spooled and cold
// archives and in backups not destroyed (from their catalogs' row counts).
util::Json copies_by_table(Session& s, const settings::Settings& set);

// Per column of the map: the roles that may SELECT and UPDATE it, and per table those that may
// DELETE or TRUNCATE its rows, as the catalog says (has_*_privilege, membership and
// pg_read_all_data included); superusers are listed apart.
util::Json privileges(Session& s, const settings::Settings& set);

// The report's sections for the period (see jobs/evidence/report.cpp for how they are shown).
util::Json purge_by_day(Session& s, const Period& p);
// The gaps longer than `hours` between successful runs of `job` within the period (from its
// first success ever, if later, until now): [{from, to, hours}].
util::Json gaps_between_successes(Session& s, const Period& p, const std::string& job,
                                  double hours);
util::Json overdue_by_day(Session& s, const Period& p);
util::Json archives_in(Session& s, const Period& p);
util::Json requests_in(Session& s, const Period& p);
util::Json backups_in(Session& s, const Period& p);
util::Json drills_in(Session& s, const Period& p);
util::Json incidents_in(Session& s, const Period& p);
util::Json audit_in(Session& s, const Period& p);

} // namespace lethe::db::store
