// Typed access to the deletion requests of schema 7 (lethe.requests, lethe.request_orders,
// lethe.request_runs) and to the order table a scope is resolved on. The only place with SQL
// about these tables; jobs/request calls these functions. No buyer identifier reaches a
// statement's text or a bind parameter: a buyer's email and its pseudonym reach the server only
// through COPY into a temporary table of the session (server logs keep statements and their
// parameters, never COPY data), and the request keeps keyed HMACs of its identifiers.
#pragma once

#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lethe::db::store {

struct RequestRow {
  long long id = 0;
  std::string amazon_ref;
  std::string action;     // delete | return
  std::string scope_kind; // order | buyer | seller
  std::string subjects;   // JSON array of HMAC hex
  std::string marketplace;
  std::string notice_at; // UTC, ISO 8601
  std::string registered_at;
  std::string registered_by;
  std::string reason;
  long long orders_resolved = 0;
  std::string state; // received | executing | live_erased | complete | cancelled
  std::string live_erased_at;
  std::string counts; // JSON object
  std::string cancelled_at;
  std::string cancelled_by;
  std::string copies; // JSON array of {kind, id}
  std::string completed_at;
  std::string return_to; // action return: the public key file, its SHA-256, the file written
  std::string return_key_sha256;
  std::string return_file;
  std::string return_sha256;
  long long return_bytes = 0;
  // The two deadlines (notice + 72 hours, notice + 90 days) and the hours left to each at the
  // instant the rows were read for (negative once passed).
  std::string live_deadline;
  std::string copies_deadline;
  double live_hours_left = 0;
  double copies_hours_left = 0;
};

// Every request, oldest notice first, with hours left as of `as_of` (NULL: the server's now()).
std::vector<RequestRow> requests(Session& s, const Value& as_of);
std::optional<RequestRow> find_request(Session& s, long long id, const Value& as_of);
// The requests `lethe request run` has work on (received, executing, live_erased), oldest notice
// first.
std::vector<RequestRow> requests_with_work(Session& s);
// The request with this Amazon reference that was not cancelled, if any.
std::optional<RequestRow> open_request_by_ref(Transaction& tx, const std::string& ref);
// Requests registered in the last 24 hours (database clock), cancelled ones included.
long long requests_registered_last_day(Transaction& tx);

struct NewRequest {
  std::string amazon_ref;
  std::string action;
  std::string scope_kind;
  std::string subjects; // JSON array of HMAC hex
  std::string marketplace;
  std::string notice_at; // empty: the server's now()
  std::string registered_by;
  std::string reason;
  std::string return_to; // action return only
  std::string return_key_sha256;
};
// Inserts the request (state received, orders_resolved 0); returns its id.
long long insert_request(Transaction& tx, const NewRequest& r);

// What a scope names, to be resolved to the root table's orders.
struct ScopeValues {
  std::vector<std::string> order_ids; // order scope
  std::string buyer;                  // buyer scope: the identifier as stored
  std::string buyer_pseudonym;        // and the purge's hmac pseudonym of it
  std::string seller, marketplace;    // seller scope (marketplace optional)
};
// Inserts into lethe.request_orders the keys of the root orders the scope names (a buyer's
// orders whether the column holds the identifier or its pseudonym), sets orders_resolved, and
// returns it. Order and seller ids are not personal data and go as bind parameters.
long long resolve_scope(Transaction& tx, const settings::Settings& s, long long request_id,
                        const std::string& scope_kind, const ScopeValues& v);

void set_state(Transaction& tx, long long id, const std::string& state);
// Records the return file written for request `id`.
void set_return_file(Transaction& tx, long long id, const std::string& path,
                     unsigned long long bytes, const std::string& sha256);
// Cancels request `id` if it is still `received`; returns whether it did.
bool cancel_request(Transaction& tx, long long id, const std::string& who);
// Links run `run_id` to the request (its progress counts for the request).
void add_request_run(Transaction& tx, long long id, long long run_id);
// The sum of every linked run's committed progress, by item (orders_done, rows.<table>, …).
std::map<std::string, long long> request_progress(Transaction& tx, long long id);
// The request's resolved orders the root table still holds, and how many of those are held
// (hold.predicate, in no archive yet).
struct Remaining {
  long long orders = 0;
  long long held = 0;
};
Remaining orders_remaining(Transaction& tx, const settings::Settings& s, long long id);
// How many orders request `id`'s scope resolved to (lethe.request_orders, until the erase).
long long request_order_count(Transaction& tx, long long id);
// SQL predicate: the order whose key text is `key_text` is named by a request that has not
// erased it yet (the archive job archives such held orders whether due or not).
std::string requested_order_sql(const std::string& key_text);
// Marks the live rows erased at `erased_at` (when the last batch committed) with `counts` and
// the copies that held the orders (JSON array). The resolved order keys stay until the request
// is complete: a spooled archive holding some of them is found by them, and rewritten without
// exactly them.
void mark_live_erased(Transaction& tx, long long id, const std::string& counts_json,
                      const std::string& copies_json, const std::string& erased_at);
// Marks request `id` complete and forgets its resolved order keys.
void mark_complete(Transaction& tx, long long id);
// Replaces request `id`'s list of copies (JSON array of {kind, id, …}).
void set_request_copies(Transaction& tx, long long id, const std::string& copies_json);
// Request `id`'s stored state, empty when there is none.
std::string request_state(Transaction& tx, long long id);
// Of `tables`, those not vacuumed (by anyone, autovacuum included) since request `id`'s live
// rows were erased.
std::vector<std::string> tables_not_vacuumed_since_erase(Transaction& tx,
                                                         const std::vector<std::string>& tables,
                                                         long long id);

// A copy the operator registered for a request.
struct RegisteredCopy {
  int no = 0;
  std::string what;
  std::string expires_at;
  std::string registered_at;
  std::string registered_by;
  std::string destroyed_at; // "" while it exists
  std::string destroyed_by;
  bool outlives_deadline = false; // expires after notice + 90 days
};
std::vector<RegisteredCopy> registered_copies(Session& s, long long id);
// Registers a copy; returns its number.
int add_registered_copy(Transaction& tx, long long id, const std::string& what,
                        const std::string& expires_at, const std::string& who);
// Marks copy `no` destroyed; false when there is no such copy still existing.
bool destroy_registered_copy(Transaction& tx, long long id, int no, const std::string& who);

// An audit record about a request (its details name the request): what a certificate cites.
struct RequestEvidence {
  long long seq = 0;
  std::string hash;
  std::string recorded_at;
  std::string kind;
  std::string actor;
  std::string db_role;
  std::string exit_reason;
  long long run_id = 0; // 0: none
};
std::vector<RequestEvidence> request_evidence(Session& s, long long id);
// The state of each copy now, and when it was destroyed ("" if not).
struct CopyState {
  std::string state;
  std::string destroyed_at;
  std::string retention_until;
};
std::optional<CopyState> copy_state(Session& s, const std::string& kind, const std::string& id);

// Replay after a restore (decision 4): a ledger entry's subjects, found again by their keyed
// HMACs. `kind` is the entry's scope (order, buyer, seller).
struct ReplaySubject {
  long long entry_seq = 0;
  std::string kind;
  std::string subject; // HMAC hex
  std::string marketplace;
};
// Every root order whose key (order), buyer or seller column HMACs to a subject under the key
// pads in `pads_table` (the session's temporary table), or whose buyer column holds a subject's
// pseudonym: (entry_seq, order key) pairs. One pass over the root table for all entries.
std::vector<std::pair<long long, std::string>>
find_subjects(Transaction& tx, const settings::Settings& s,
              const std::vector<ReplaySubject>& subjects, const std::string& pads_table);

bool request_exists(Transaction& tx, long long id);
// A request of the ledger that the database does not have (restored from before it was
// registered), with its ledger id, as `executing`; the id sequence moves past it.
void insert_replayed_request(Transaction& tx, long long id, const NewRequest& r);
// Adds `keys` to the request's resolved orders (present ones are kept).
void add_request_orders(Transaction& tx, long long id, const std::vector<std::string>& keys);
void drop_request_orders(Transaction& tx, long long id);

} // namespace lethe::db::store
