// Checks the PII map against the live catalog: tables, columns, types, keys, state views.
#pragma once

#include "worker/db/session.hpp"

#include <optional>
#include <string>
#include <vector>

namespace lethe::db {

struct CatalogReport {
  std::vector<std::string> problems; // each "file:line:column: what is wrong"
  std::vector<std::string> warnings; // e.g. a missing index that would slow the purge
};

// The column that identifies a row of PII-map table `t` of `s`: the map's key, or else the
// primary key or a unique not-null single-column key from the catalog; none when it has neither.
std::optional<std::string> row_identity(Session& session, const settings::Settings& s,
                                        const settings::PiiTable& t);

// Compares `s`'s PII map with what `session` sees. Never reads a row of user data.
CatalogReport check_pii_map(Session& session, const settings::Settings& s);

} // namespace lethe::db
