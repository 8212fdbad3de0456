// Schema drift (C1): the catalog facts of the PII map's reach (every column of every mapped
// table, and every table that references a mapped table by foreign key or sits in a mapped
// table's schema) compared with the facts an operator last approved. An approval is an audit
// record (`lethe config approve`), so the hash chain covers it and `audit verify` catches an
// edit. Never reads a row of user data.
#pragma once

#include "worker/db/session.hpp"
#include "worker/util/json.hpp"

#include <optional>
#include <string>
#include <vector>

namespace lethe::db {

struct ColumnFact {
  std::string name;
  std::string type; // format_type
  bool not_null = false;
};

struct TableFact {
  std::string table;    // schema.table as the catalog spells it
  std::string map_name; // the PII map's name for it; empty: not in the map
  std::vector<ColumnFact> columns;
};

struct SchemaFacts {
  std::vector<TableFact> tables; // sorted by table
};

util::Json to_json(const SchemaFacts& f);
// Throws Error(data) when `j` is not what to_json writes.
SchemaFacts schema_facts_from_json(const util::Json& j);

// The live catalog facts of `s`'s map's reach (tables in lethe's own schema excluded).
SchemaFacts read_schema_facts(Session& session, const settings::Settings& s);

// PII candidates by name: a word of the column's name (snake or camel case, any letter case)
// is one of email, mail, phone, tel, mobile, name, first, last, address, street, city, zip,
// postcode, postal, ip, birth, dob, tax, vat, iban, card, message, note, comment, instructions
// (and their plurals).
bool pii_like_name(const std::string& column);
// Types that can hold PII as text: text, varchar, char, json, jsonb, inet, cidr, citext, bytea,
// xml and arrays of them. Numbers, booleans, dates and times cannot.
bool pii_capable_type(const std::string& format_type);
// "name and type", "type" or "" (not a candidate).
std::string candidate_rating(const ColumnFact& c);

// The columns of map table `t` the map mentions: its PII columns, keys, links, the root's
// clock, status and identifier columns, the columns its children link to, and `not_pii`.
std::vector<std::string> mentioned_columns(const settings::Settings& s,
                                           const settings::PiiTable& t);

struct DriftItem {
  std::string kind; // see drift()
  std::string table;
  std::string column; // empty for a table item
  std::string detail; // e.g. "text -> jsonb"; never a value
  std::string candidate;
  bool alarm = false; // could hold PII unmapped, or the map lost a column: `lethe check` exits 1
  std::string hint;
};

struct Approval {
  long long seq = 0;
  std::string recorded_at;
  std::string actor;
  SchemaFacts facts;
};

// The newest approval in the audit trail, if any.
std::optional<Approval> last_approval(Session& session);

// Drift of `live` against `approved` under map `s`:
// - unmentioned_column: a column of a mapped table that can hold PII and that the map does not
//   mention (alarm, approved or not: only the map can say a column holds no PII);
// - mapped_column_missing: a column the map names that the table no longer has (alarm);
// - column_added / column_dropped / column_retyped / nullability_changed: a mapped or
//   neighbouring table's column since the approval (alarm when a column added to a
//   neighbouring table is a candidate by name and type, or one is retyped to a text-like type);
// - table_added (alarm when it has a column that can hold PII) / table_dropped: a neighbouring
//   table since the approval;
// - not_approved: there is no approval at all (alarm).
std::vector<DriftItem> drift(const settings::Settings& s, const SchemaFacts& live,
                             const std::optional<Approval>& approved);

// Drift of the live catalog against the newest approval: what `lethe check`, `config check`
// and the purge report.
std::vector<DriftItem> current_drift(Session& session, const settings::Settings& s);

// Number of items with alarm set.
size_t alarm_count(const std::vector<DriftItem>& items);

// The items as `check --json` shows them, and as text: a summary line, then each item with its
// HINT (names, types and counts only).
util::Json to_json(const std::vector<DriftItem>& items);
std::string describe(const std::vector<DriftItem>& items);

} // namespace lethe::db
