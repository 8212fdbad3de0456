// SQL derived from the PII map: the state views that let a job see which rows still hold PII
// (and when they fall due) without reading a PII value, and the least-privilege grants (C11).
#pragma once

#include "worker/settings/settings.hpp"

#include <functional>
#include <string>

namespace lethe::db {

// Column of every state view (delete-row tables aside) that holds the row's identity: the map's
// `key`, or else the table's primary key or a unique not-null single-column key.
inline constexpr const char* k_row_id = "lethe_row_id";

// Column of a state view that is true where PII column `index` of the map's table is NULL, so a
// constant can keep a NULL without the job reading the column.
std::string null_flag(size_t index);

// SQL that returns the name of the identity column of the table `regclass_sql` (an SQL
// expression of type regclass): its primary key, else a unique not-null single-column key.
std::string row_identity_query(const std::string& regclass_sql);

// The comment each state view carries: the PII map's digest and the views' generation.
std::string view_comment(const settings::Settings& s);

// Name of the state view for PII-map table `table`: lethe.pii_state_<table with . as _>.
std::string state_view(const std::string& table);

// SQL boolean over table `t`'s own columns: true while a row still holds PII.
std::string has_pii_expr(const settings::PiiTable& t);

// SQL timestamptz over the root table: when the order's PII falls due (NULL: no clock yet).
std::string due_at_expr(const settings::Settings& s);

// SQL predicate: row `alias` of PII-map table `t` belongs to one of a set of orders.
// `match(column)` turns a column expression of the root key's values into the test for
// membership, e.g. "x.id = ANY($1::text[])" or "x.id IN (SELECT k FROM keys)".
std::string rows_of_orders(const settings::Settings& s, const settings::PiiTable& t,
                           const std::string& alias,
                           const std::function<std::string(const std::string&)>& match);

// FROM clause joining `t`'s state view (alias c0, or r for the root) up to the root's (alias r).
std::string state_path_to_root(const settings::Settings& s, const settings::PiiTable& t);

// SQL that creates or replaces every state view (run by the database owner).
std::string state_views_sql(const settings::Settings& s);

// The full `lethe grants` script: state views, one role per job, column-level grants.
std::string grants_sql(const settings::Settings& s);

} // namespace lethe::db
