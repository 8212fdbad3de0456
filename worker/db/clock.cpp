#include "worker/db/clock.hpp"

namespace lethe::db {

Instant resolve_instant(Session& session, const std::string& as_of, const std::string& option) {
  try {
    Rows r =
        session.exec("SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                     "t > now() FROM (SELECT coalesce($1::timestamptz, now()) AS t) x",
                     {as_of.empty() ? Value{} : Value{as_of}});
    return Instant{r.text(0, 0), r.text(0, 1) == "t"};
  } catch (const DbError& e) {
    if (e.sqlstate().starts_with("22")) {
      throw Error(Exit::usage, option + " is not a timestamp PostgreSQL understands",
                  "write it as 2026-01-31 or '2026-01-31 12:00:00+00'");
    }
    throw;
  }
}

Instant hours_before(Session& session, const std::string& iso, long hours) {
  Rows r = session.exec("SELECT to_char(($1::timestamptz - make_interval(hours => $2::int)) AT "
                        "TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                        {iso, std::to_string(hours)});
  return Instant{r.text(0, 0), false};
}

std::string utc_text(const std::string& expr) {
  return "to_char((" + expr + ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
}

} // namespace lethe::db
