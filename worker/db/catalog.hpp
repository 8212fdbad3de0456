// Checks the PII map against the live catalog: tables, columns, types, keys, state views.
#pragma once

#include "worker/db/session.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lethe::db {

struct CatalogReport {
  std::vector<std::string> problems; // each "file:line:column: what is wrong"
  std::vector<std::string> warnings; // e.g. a missing index that would slow the purge
};

// The columns that identify a row of PII-map table `t` of `s`: the map's key (maybe composite),
// or else the primary key or a unique not-null single-column key from the catalog; none when it
// has neither.
std::optional<settings::Columns> row_identity(Session& session, const settings::Settings& s,
                                              const settings::PiiTable& t);

// What a job needs to know of one PII-map table's catalog entry, read once per run.
struct TableFacts {
  std::string table;
  std::vector<std::pair<std::string, std::string>> columns; // name, format_type, in order
  std::optional<settings::Columns> row_id; // see row_identity(); none for a table without one

  // format_type of column `name`; throws Error(config) when the table has no such column.
  const std::string& type_of(const std::string& name) const;
};

// The catalog facts of every PII-map table, in map order (the root first). Everything the
// sanitize plan and the archive container need of the catalog, so both are built from the map
// and these facts alone.
struct CatalogFacts {
  std::vector<TableFacts> tables;

  // The facts of PII-map table `table`; throws Error(internal) for a table not in the map.
  const TableFacts& of(const std::string& table) const;
};

// SQL: the columns of the table named by $1 (a quoted, maybe schema-qualified name), in order:
// (name, format_type). The one catalog lookup of columns; read_facts and the archive's
// container (inside its snapshot) both use it.
inline constexpr const char* k_columns_query =
    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum";

// Reads the facts of every table of `s`'s PII map, in one query per table.
CatalogFacts read_facts(Session& session, const settings::Settings& s);

// One problem ("file:line:column: …") per state view of `s`'s map that is missing or was made
// for another map or an older lethe (its comment is not view_comment(s)).
std::vector<std::string> stale_state_views(Session& session, const settings::Settings& s);

// Throws Error(config) with a HINT when stale_state_views finds any: a job must not read PII
// state through views that describe another map.
void require_current_state_views(Session& session, const settings::Settings& s);

// Compares `s`'s PII map with what `session` sees. Never reads a row of user data.
CatalogReport check_pii_map(Session& session, const settings::Settings& s);

} // namespace lethe::db
