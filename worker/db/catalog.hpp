// Checks the PII map against the live catalog: tables, columns, types, keys, state views.
#pragma once

#include "worker/db/session.hpp"

#include <string>
#include <vector>

namespace lethe::db {

struct CatalogReport {
  std::vector<std::string> problems; // each "file:line:column: what is wrong"
  std::vector<std::string> warnings; // e.g. a missing index that would slow the purge
};

// Compares `s`'s PII map with what `session` sees. Never reads a row of user data.
CatalogReport check_pii_map(Session& session, const settings::Settings& s);

} // namespace lethe::db
