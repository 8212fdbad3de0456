// Typed access to lethe's archive catalog (lethe.archives, lethe.archived_orders) and to the
// audit records that are its evidence. The only place with SQL text about these tables: jobs
// call these functions. The catalog's orders and states change only through the definer
// functions of schema 4, which require the audit record in the same transaction.
#pragma once

#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace lethe::db::store {

// One catalog row.
struct ArchiveRow {
  std::string id;
  std::string path;
  unsigned long long size = 0;
  std::string sha256;
  std::string state; // spooled | cold | destroyed
  std::string retention_until;
  long long orders = 0;
  std::string created_at;
  std::string destroyed_by;      // the actor of the destroyed record, as lethe wrote it
  std::string destroyed_by_role; // the database role the server stamped on that record
};

// Every archive, by id.
std::vector<ArchiveRow> archives(Session& s);
// Archive `id`, if the catalog has it.
std::optional<ArchiveRow> find_archive(Session& s, const std::string& id);
// Archives not destroyed whose retention ended before `as_of` (NULL: now) and before the
// server's date.
std::vector<ArchiveRow> archives_past_retention(Session& s, const Value& as_of);
// The ids the catalog names, in any state.
std::set<std::string> archive_ids(Session& s);
// The recipients JSON the archive was written to (key names, files, digests), or "".
std::string archive_recipients(Session& s, const std::string& id);
// Whether archive `id` is still retained by the server's date.
bool retained_today(Session& s, const std::string& id);
// Records that `archive verify` saw the file now.
void touch_archive(Session& s, const std::string& id);

// A new catalog row, as the archive job records it.
struct NewArchive {
  std::string id;
  long long run_id = 0;
  std::string path;
  unsigned long long size = 0;
  std::string sha256;
  std::string as_of;
  std::string retention_until;
  std::string pii_map_digest;
  std::string recipients_json;
  std::string row_counts_json;
  long long orders = 0;
};
void insert_archive(Transaction& tx, const NewArchive& a);
// Lists the order keys in column order_key of `keys_table` as archive `id`'s, with its
// archive_written record `evidence_seq` (lethe.archive_orders checks it).
void record_archived_orders(Transaction& tx, const std::string& id, long long evidence_seq,
                            const std::string& keys_table);
// What archive `id` was written as of and with which PII map (for its rewrite).
struct WrittenAs {
  std::string as_of;
  std::string pii_map_digest;
};
WrittenAs written_as(Session& s, const std::string& id);
// The archive recorded as archive `old_id` rewritten without a request's orders (its
// archive_written record says so), and that request, if there is one.
struct Rewritten {
  std::string archive_id;
  long long request_id = 0;
};
std::optional<Rewritten> rewritten_as(Session& s, const std::string& old_id);
// How many of request `request_id`'s resolved orders archive `archive_id` lists.
long long request_orders_in_archive(Session& s, long long request_id,
                                    const std::string& archive_id);
// Fills a new temporary table `kept_table` (order_key, dropped at commit) with archive
// `old_id`'s orders but those whose root key (values of the root's `key` columns, as text) is
// in `removed`. Returns how many it kept, how many of `removed` the archive lists, how many of
// `removed` request `request_id` resolved to, and how many of the request's orders the archive
// lists: a rewrite removes exactly the last set.
struct KeptOrders {
  long long kept = 0;
  long long removed_listed = 0;
  long long removed_requested = 0;
  long long requested_listed = 0;
};
KeptOrders orders_kept_by_rewrite(Transaction& tx, const std::string& old_id, long long request_id,
                                  const settings::Columns& key,
                                  const std::vector<std::vector<std::string>>& removed,
                                  const std::string& kept_table);
// Moves archive `id` to `state` with its audit record `seq` (lethe.archive_set_state).
void set_archive_state(Transaction& tx, const std::string& id, const std::string& state,
                       long long seq);

// The archive_written audit records of archive `id`, oldest first: their bytes and SHA-256.
struct WrittenEvidence {
  std::string bytes;
  std::string sha256;
};
std::vector<WrittenEvidence> archive_written_records(Session& s, const std::string& id);
// The state the audit trail says archive `id` is in: the newest state change recorded by
// `archive mark`, `archive expire` or `archive rewrite`, or spooled.
std::string audited_archive_state(Session& s, const std::string& id);
// Whether the catalog's destroyed_by and destroyed_by_role differ from the destroyed record's
// actor and role (archives destroyed before schema 4 name no state record and pass).
bool destroyed_by_differs(Session& s, const std::string& id);

// An archive whose archived_orders do not number its orders, or that has no evidence.
struct OrdersMismatch {
  std::string id;
  std::string orders;
  std::string listed;
  bool no_evidence = false;
};
std::vector<OrdersMismatch> archived_orders_mismatches(Session& s);
// archived_orders rows naming an archive not cataloged with its evidence, counted per archive.
std::vector<std::pair<std::string, std::string>> stray_archived_orders(Session& s);

} // namespace lethe::db::store
