// The purge's SQL, derived once per run from the PII map: which root orders a batch takes, and
// how each table's rows of that batch are sanitized. Every statement reads only lethe's state
// views and key/link columns, so the purge role needs no SELECT on PII (hmac columns aside).
#pragma once

#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"

#include <string>
#include <vector>

namespace lethe::jobs::purge {

// How one PII-map table's rows of a batch are sanitized. $1 is always the batch's root keys.
struct TableStep {
  const settings::PiiTable* table = nullptr;
  // UPDATE of null/constant columns (RETURNING the ids of the rows it changed), or DELETE;
  // empty when none
  std::string sanitize;
  // hmac columns: read the values, pseudonymize them in the worker, write them back.
  std::vector<std::string> hmac_columns;
  std::string hmac_select; // $1 keys -> row id, then the hmac columns
  std::string hmac_update; // $1 row ids, $2.. one text array per hmac column; RETURNING ids
  bool skip = false;       // nothing of this table is due in this run
};

// One keyset walk over due orders along an index of a retention clock: shipped orders by
// shipment time, each never-shipped status by its own clock. Walking the clock rather than the
// key keeps the heap access in the table's physical (arrival) order.
// Parameters: $1 as_of, $2 limit, $3 workers, $4 this worker; `next` adds $5 last clock and
// $6 last key. Both return (clock as text, key as text) in walk order.
struct Lane {
  std::string name; // "shipped", "never shipped: Canceled", …
  std::string first;
  std::string next;
};

struct Plan {
  std::string key_type; // format_type of the root key
  std::vector<Lane> lanes;
  std::string count_candidates; // $1 as_of
  std::string count_held;       // $1 as_of: orders with PII due but held for the archive
  std::string count_root;       // all root rows
  std::string guard;            // $1 keys, $2 as_of: those still due and not held
  std::vector<TableStep> steps; // deepest tables first, the root last
};

enum class Scope { all_due, archived_only };

// Builds the plan; reads column types from the catalog. With Scope::archived_only the lanes
// take only orders some archive holds (the archive job's last step).
Plan build_plan(db::Session& session, const settings::Settings& s, Scope scope = Scope::all_due);

} // namespace lethe::jobs::purge
