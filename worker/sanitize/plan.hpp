// The sanitize engine's SQL, derived purely from the PII map, the catalog facts read once per
// run, a Selection and an Action: which root orders a batch takes, and what each table's rows of
// that batch undergo. Every statement reads only lethe's views (hmac values through the
// due-values view, which shows only due orders' rows) and key/link columns, so the purge role
// needs no SELECT on a PII column. Built without a server, so unit tests check the SQL.
#pragma once

#include "worker/db/catalog.hpp"
#include "worker/sanitize/selection.hpp"
#include "worker/settings/settings.hpp"

#include <string>
#include <utility>
#include <vector>

namespace lethe::sanitize {

// The session's hmac key pads (TableStep::hmac).
inline constexpr const char* k_hmac_key_table = "pg_temp.lethe_hmac_key";

// What one PII-map table's rows of a batch undergo. $1 is always the batch's root keys.
struct TableStep {
  const settings::PiiTable* table = nullptr;
  // UPDATE of every PII column (RETURNING the ids of the rows it changed), or DELETE
  std::string sanitize;
  bool deletes = false; // `sanitize` is a DELETE: its count is the rows it removed
  // `sanitize` computes hmac columns in the database: it reads the session's temporary table
  // k_hmac_key_table (one row: ipad, opad), which the engine fills through COPY, so the key
  // is never in a statement's text or parameters, where server logs could keep it.
  bool hmac = false;
  bool skip = false; // nothing of this table is due in this run
};

// One keyset walk over the selected orders: shipped orders by shipment time, each
// never-shipped status by its own clock (walking the clock rather than the key keeps the heap
// access in the table's physical, arrival order); explicit orders by key.
// Parameters: $1 as_of, $2 limit, $3 workers, $4 this worker; `next` adds $5 last clock (as
// text) and $6 last key. Both return (clock as text, key as text) in walk order.
struct Lane {
  std::string name; // "shipped", "never shipped: Canceled", "orders"
  std::string first;
  std::string next;
};

struct Plan {
  std::string key_type; // format_type of the root key
  std::vector<Lane> lanes;
  std::string count_candidates; // $1 as_of: the orders the selection takes now
  // Selection::due only, $1 as_of. count_due: one row of all root rows, the orders taken, the
  // orders held, and the root's rows with PII due and held; count_children: per child table,
  // one row of its rows with PII due and held.
  std::string count_due;
  std::vector<std::pair<std::string, std::string>> count_children; // table, SQL
  std::string guard; // $1 keys, $2 as_of: those the selection still takes
  // The lanes' query is the selection's own test (due, archived and due, explicit orders): the
  // engine runs it inside each batch's transaction, where it is the guard, and `guard` is not
  // run. A request's lane walks lethe.request_orders, so its batches run `guard` (unless
  // done_by_root_delete, below).
  bool lane_guards = true;
  // A request's erase with requests.held_orders = "erase": every picked order is the batch's
  // (`guard` is empty and not run), and the orders done are the rows the root's DELETE took, so
  // one already gone is not counted. The guard only re-read the root for them (1.3 s of server
  // time for a seller's 200,000 orders).
  bool done_by_root_delete = false;
  std::vector<TableStep> steps; // deepest tables first, the root last
};

// Builds the plan. Throws Error(config) for a table whose rows cannot be told apart (no key in
// the map, no primary or unique not-null key in the catalog).
Plan build_plan(const settings::Settings& s, const db::CatalogFacts& facts, const Selection& sel,
                Action action = Action::sanitize);

} // namespace lethe::sanitize
