// The database clock decides (design decision 6): instants are resolved by the server.
#pragma once

#include "worker/db/session.hpp"

#include <string>

namespace lethe::db {

struct Instant {
  std::string iso;     // UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
  bool future = false; // later than the server's now()
};

// `as_of` (any timestamp PostgreSQL reads; empty: now()) as the server sees it. A value it cannot
// read is Error(usage), naming `option`.
Instant resolve_instant(Session& session, const std::string& as_of,
                        const std::string& option = "--as-of");

// SQL text formatting the timestamptz expression `expr` as UTC ISO 8601 to the second
// ("YYYY-MM-DDTHH:MM:SSZ"; NULL stays NULL).
std::string utc_text(const std::string& expr);

// The instant `hours` before `iso` (an instant the database resolved), as the server counts.
Instant hours_before(Session& session, const std::string& iso, long hours);

} // namespace lethe::db
