#include "worker/db/store/archives.hpp"

#include "worker/db/pii_sql.hpp"

namespace lethe::db::store {
namespace {

std::vector<ArchiveRow> select_archives(Session& s, const std::string& where,
                                        const Params& params = {}) {
  Rows r =
      s.exec("SELECT archive_id, path, size_bytes, sha256, state, retention_until::text, "
             "orders, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
             "coalesce(destroyed_by, ''), coalesce(destroyed_by_role, '') "
             "FROM lethe.archives WHERE " +
                 where + " ORDER BY archive_id",
             params);
  std::vector<ArchiveRow> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.text(i, 0), r.text(i, 1), std::stoull(r.text(i, 2)), r.text(i, 3),
                   r.text(i, 4), r.text(i, 5), r.integer(i, 6), r.text(i, 7), r.text(i, 8),
                   r.text(i, 9)});
  }
  return out;
}

} // namespace

std::vector<ArchiveRow> archives(Session& s) {
  return select_archives(s, "true");
}

std::optional<ArchiveRow> find_archive(Session& s, const std::string& id) {
  std::vector<ArchiveRow> found = select_archives(s, "archive_id = $1", {id});
  return found.empty() ? std::nullopt : std::optional<ArchiveRow>(found.front());
}

std::vector<ArchiveRow> archives_past_retention(Session& s, const Value& as_of) {
  return select_archives(s,
                         "state <> 'destroyed' AND retention_until < least((coalesce("
                         "$1::timestamptz, now()) AT TIME ZONE 'UTC')::date, current_date)",
                         {as_of});
}

std::set<std::string> archive_ids(Session& s) {
  Rows r = s.exec("SELECT archive_id FROM lethe.archives");
  std::set<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.insert(r.text(i, 0));
  }
  return out;
}

std::string archive_recipients(Session& s, const std::string& id) {
  Rows r = s.exec("SELECT recipients FROM lethe.archives WHERE archive_id = $1", {id});
  return r.empty() ? std::string() : r.at(0, 0).value_or("");
}

bool retained_today(Session& s, const std::string& id) {
  Rows r = s.exec(
      "SELECT retention_until >= current_date FROM lethe.archives WHERE archive_id = $1", {id});
  return !r.empty() && r.text(0, 0) == "t";
}

void touch_archive(Session& s, const std::string& id) {
  s.exec("UPDATE lethe.archives SET last_seen_at = now() WHERE archive_id = $1", {id});
}

void insert_archive(Transaction& tx, const NewArchive& a) {
  tx.exec("INSERT INTO lethe.archives (archive_id, run_id, path, size_bytes, sha256, as_of, "
          "retention_until, pii_map_digest, recipients, row_counts, orders, last_seen_at) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())",
          {a.id, std::to_string(a.run_id), a.path, std::to_string(a.size), a.sha256, a.as_of,
           a.retention_until, a.pii_map_digest, a.recipients_json, a.row_counts_json,
           std::to_string(a.orders)});
}

void record_archived_orders(Transaction& tx, const std::string& id, long long evidence_seq,
                            const std::string& keys_table) {
  tx.exec("SELECT lethe.archive_orders($1, $2::bigint, (SELECT array_agg(order_key ORDER BY 1) "
          "FROM " +
              keys_table + "))",
          {id, std::to_string(evidence_seq)});
}

WrittenAs written_as(Session& s, const std::string& id) {
  Rows r =
      s.exec("SELECT as_of::text, pii_map_digest FROM lethe.archives WHERE archive_id = $1", {id});
  return r.empty() ? WrittenAs{} : WrittenAs{r.text(0, 0), r.at(0, 1).value_or("")};
}

std::optional<Rewritten> rewritten_as(Session& s, const std::string& old_id) {
  Rows r = s.exec("SELECT a.archive_id, (l.details::jsonb ->> 'excluded_request')::bigint FROM "
                  "lethe.archives a JOIN lethe.audit_log l ON l.seq = a.evidence_seq AND "
                  "l.exit_reason = 'archive_written' WHERE (l.details::jsonb ->> "
                  "'rewritten_from') = $1 ORDER BY l.seq DESC LIMIT 1",
                  {old_id});
  if (r.empty()) {
    return std::nullopt;
  }
  return Rewritten{r.text(0, 0), r.integer(0, 1)};
}

long long request_orders_in_archive(Session& s, long long request_id,
                                    const std::string& archive_id) {
  return s
      .exec("SELECT count(*) FROM lethe.archived_orders o JOIN lethe.request_orders ro ON "
            "ro.order_key = o.order_key AND ro.request_id = $1 WHERE o.archive_id = $2",
            {std::to_string(request_id), archive_id})
      .integer(0, 0);
}

KeptOrders orders_kept_by_rewrite(Transaction& tx, const std::string& old_id, long long request_id,
                                  const settings::Columns& key,
                                  const std::vector<std::vector<std::string>>& removed,
                                  const std::string& kept_table) {
  // The removed keys under the root key's own column names, so key_text_sql spells their text
  // as the archive job spelled it in lethe.archived_orders.
  std::string columns;
  for (const std::string& c : key) {
    columns += (columns.empty() ? "" : ", ") + quote_ident(c) + " text";
  }
  tx.exec("CREATE TEMPORARY TABLE lethe_rewrite_removed (" + columns + ") ON COMMIT DROP");
  size_t next = 0;
  tx.copy_in("pg_temp.lethe_rewrite_removed", [&](std::string& line) {
    if (next == removed.size()) {
      return false;
    }
    line.clear();
    for (size_t i = 0; i < removed[next].size(); ++i) {
      line += i > 0 ? "\t" : "";
      copy_field(line, removed[next][i]);
    }
    ++next;
    return true;
  });
  tx.exec("CREATE TEMPORARY TABLE lethe_rewrite_removed_keys ON COMMIT DROP AS SELECT DISTINCT " +
          key_text_sql("x", key) + " AS order_key FROM pg_temp.lethe_rewrite_removed x");
  tx.exec("ANALYZE pg_temp.lethe_rewrite_removed_keys");
  tx.exec("CREATE TEMPORARY TABLE " + kept_table +
              " ON COMMIT DROP AS SELECT o.order_key FROM lethe.archived_orders o WHERE "
              "o.archive_id = $1 AND NOT EXISTS (SELECT 1 FROM pg_temp.lethe_rewrite_removed_keys "
              "r WHERE r.order_key = o.order_key)",
          {old_id});
  Rows r = tx.exec(
      "SELECT (SELECT count(*) FROM " + kept_table +
          "), (SELECT count(*) FROM pg_temp.lethe_rewrite_removed_keys r JOIN "
          "lethe.archived_orders o ON o.order_key = r.order_key AND o.archive_id = $1), "
          "(SELECT count(*) FROM pg_temp.lethe_rewrite_removed_keys r JOIN lethe.request_orders ro "
          "ON ro.order_key = r.order_key AND ro.request_id = $2), (SELECT count(*) FROM "
          "lethe.archived_orders o JOIN lethe.request_orders ro ON ro.order_key = o.order_key AND "
          "ro.request_id = $2 WHERE o.archive_id = $1)",
      {old_id, std::to_string(request_id)});
  return {r.integer(0, 0), r.integer(0, 1), r.integer(0, 2), r.integer(0, 3)};
}

void set_archive_state(Transaction& tx, const std::string& id, const std::string& state,
                       long long seq) {
  tx.exec("SELECT lethe.archive_set_state($1, $2, $3::bigint)", {id, state, std::to_string(seq)});
}

std::vector<WrittenEvidence> archive_written_records(Session& s, const std::string& id) {
  Rows r = s.exec("SELECT (counts::jsonb ->> 'bytes'), (details::jsonb ->> 'sha256') "
                  "FROM lethe.audit_log WHERE exit_reason = 'archive_written' AND "
                  "(details::jsonb ->> 'archive_id') = $1 ORDER BY seq",
                  {id});
  std::vector<WrittenEvidence> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.at(i, 0).value_or(""), r.at(i, 1).value_or("")});
  }
  return out;
}

std::string audited_archive_state(Session& s, const std::string& id) {
  Rows r = s.exec(
      "SELECT exit_reason FROM lethe.audit_log WHERE job IN ('archive mark', 'archive expire', "
      "'archive rewrite') "
      "AND exit_reason IN ('cold', 'destroyed') AND outcome = 'done' AND "
      "(details::jsonb ->> 'archive_id') = $1 ORDER BY seq DESC LIMIT 1",
      {id});
  return r.empty() ? std::string("spooled") : r.text(0, 0);
}

bool destroyed_by_differs(Session& s, const std::string& id) {
  return s.exec("SELECT count(*) FROM lethe.archives a LEFT JOIN lethe.audit_log l ON l.seq = "
                "a.state_seq AND l.exit_reason = 'destroyed' WHERE a.archive_id = $1 AND "
                "a.state_seq IS NOT NULL AND (l.seq IS NULL OR a.destroyed_by IS DISTINCT "
                "FROM l.actor OR a.destroyed_by_role IS DISTINCT FROM l.db_role)",
                {id})
             .integer(0, 0) != 0;
}

std::vector<OrdersMismatch> archived_orders_mismatches(Session& s) {
  Rows r = s.exec("SELECT a.archive_id, a.orders, count(o.order_key), a.evidence_seq IS NULL "
                  "FROM lethe.archives a LEFT JOIN lethe.archived_orders o ON o.archive_id = "
                  "a.archive_id GROUP BY a.archive_id HAVING count(o.order_key) <> a.orders "
                  "OR a.evidence_seq IS NULL ORDER BY 1");
  std::vector<OrdersMismatch> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3) == "t"});
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> stray_archived_orders(Session& s) {
  Rows r = s.exec("SELECT o.archive_id, count(*) FROM lethe.archived_orders o WHERE NOT EXISTS "
                  "(SELECT 1 FROM lethe.archives a WHERE a.archive_id = o.archive_id AND "
                  "a.evidence_seq IS NOT NULL) GROUP BY 1 ORDER BY 1");
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.emplace_back(r.text(i, 0), r.text(i, 1));
  }
  return out;
}

} // namespace lethe::db::store
