// SQL derived from the PII map: the state views that let a job see which rows still hold PII
// (and when they fall due) without reading a PII value, and the least-privilege grants (C11).
#pragma once

#include "worker/settings/settings.hpp"

#include <functional>
#include <string>

namespace lethe::db {

// Column of every state view (delete-row tables aside) that holds the row's identity: the map's
// one-column `key`, or else the table's primary key or a unique not-null single-column key. A
// composite `key` has none: its columns are in the view under their own names.
inline constexpr const char* k_row_id = "lethe_row_id";

// Column of a state view that is true where PII column `index` of the map's table is NULL, so a
// constant can keep a NULL without the job reading the column.
std::string null_flag(size_t index);

// Column of a due-values view holding hmac PII column `index` of the map's table as text.
std::string hmac_value(size_t index);

// SQL that returns the name of the identity column of the table `regclass_sql` (an SQL
// expression of type regclass): its primary key, else a unique not-null single-column key.
std::string row_identity_query(const std::string& regclass_sql);

// The comment each state view carries: the PII map's digest and the views' generation.
std::string view_comment(const settings::Settings& s);

// Name of the state view for PII-map table `table`: lethe.pii_state_<table with . as _>.
std::string state_view(const std::string& table);

// Whether table `t` has a column whose new value is computed from its old one (hmac, json),
// and so a due-values view that shows those values for due rows.
bool has_due_view(const settings::PiiTable& t);

// Whether sanitizing `t` needs the hmac key: an hmac column or a json column with hmac paths.
bool uses_hmac_key(const settings::PiiTable& t);

// Column of a due-values view holding json PII column `index` of the map's table as jsonb.
std::string json_value(size_t index);

// SQL text[] of a JSON path: ARRAY['BuyerInfo', 'BuyerEmail'].
std::string json_path_sql(const settings::JsonPath& path);

// SQL boolean: the jsonb `doc` has a value other than JSON null at `path` (what remove takes).
std::string json_holds_sql(const std::string& doc, const settings::JsonPath& path);

// SQL boolean: the value of jsonb `doc` at `path` is not null and not yet an hmac pseudonym
// (what hmac replaces).
std::string json_needs_hmac_sql(const std::string& doc, const settings::JsonPath& path);

// Name of the due-values view of PII-map table `table` (one with hmac columns):
// lethe.pii_due_<table>. It shows only the rows whose order's PII is due now and not held, with
// their hmac columns' values, so the purge reads no PII it is not about to pseudonymize (its
// role has no SELECT on any PII column). The monitor has no grant on it.
std::string due_view(const std::string& table);

// SQL boolean over table `t`'s own columns: true while a row still holds PII.
std::string has_pii_expr(const settings::PiiTable& t);

// SQL timestamptz over the root table: when the order's PII falls due (NULL: no clock yet).
std::string due_at_expr(const settings::Settings& s);

// Columns `cols` of `alias` as a select list: "a.x" or "a.x, a.y".
std::string select_list(const std::string& alias, const settings::Columns& cols);

// Columns `cols` of `alias` as one SQL value: "a.x", or the row "(a.x, a.y)" of a composite key,
// so "<it> IN (SELECT …)" and "<it> = …" read the same for both.
std::string columns_sql(const std::string& alias, const settings::Columns& cols);

// SQL for the lower-case hex HMAC-SHA256 of the text `value` under the key whose pads (RFC 2104)
// are the columns ipad and opad of `pads` (a row of the engine's temporary key table): the
// value crypto::hmac_sha256 gives for its UTF-8 bytes. NULL for NULL.
std::string hmac_hex_sql(const std::string& value, const std::string& pads);

// SQL boolean: the text `value` is an hmac pseudonym, "hmac:" and 64 lower-case hex digits.
// Spelled as a length test and an unbounded class: PostgreSQL's regex engine runs '{64}' about
// ten times slower, and every state view evaluates this once per row.
std::string is_pseudonym_sql(const std::string& value);

// A key's canonical text, the form lethe stores an order key in (lethe.archived_orders, request
// scopes): the column as text for a one-column key; for a composite key the JSON array of its
// columns as text, e.g. ["EU", "1001"] (json_build_array's spelling, one space after a comma).
std::string key_text_sql(const std::string& alias, const settings::Columns& cols);

// "a.l1 = b.k1 AND a.l2 = b.k2": column i of `a` equals column i of `b`.
std::string columns_equal(const std::string& a, const settings::Columns& ca, const std::string& b,
                          const settings::Columns& cb);

// How a table below a child finds its parents' rows: `semi` as `IN (SELECT …)`, which the
// planner may join as it likes (a whole archive's orders); `array` as `= ANY(ARRAY(SELECT …))`
// for a single-column link, the parents' values found once by their own index (one batch).
enum class ParentLookup { semi, array };

// SQL predicate: row `alias` of PII-map table `t` belongs to one of a set of orders.
// `match(columns)` turns the root key's columns (as columns_sql spells them) into the test for
// membership, e.g. "x.id = ANY($1::text[])" or "(x.region, x.no) IN (SELECT k1, k2 FROM keys)".
std::string rows_of_orders(const settings::Settings& s, const settings::PiiTable& t,
                           const std::string& alias,
                           const std::function<std::string(const std::string&)>& match,
                           ParentLookup lookup = ParentLookup::semi);

// FROM clause joining `t`'s state view (alias c0, or r for the root) up to the root's (alias r).
std::string state_path_to_root(const settings::Settings& s, const settings::PiiTable& t);

// SQL that creates or replaces every state view (run by the database owner).
std::string state_views_sql(const settings::Settings& s);

// The full `lethe grants` script: state views, one role per job, column-level grants.
std::string grants_sql(const settings::Settings& s);

} // namespace lethe::db
