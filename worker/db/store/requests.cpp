#include "worker/db/store/requests.hpp"

#include "worker/db/clock.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/util/error.hpp"

#include <algorithm>

namespace lethe::db::store {
namespace {

std::string utc(const std::string& expr) {
  return utc_text(expr);
}

// $1: the instant hours are counted to (NULL: now()).
const std::string k_select =
    "SELECT request_id, amazon_ref, action, scope_kind, subjects, coalesce(marketplace, ''), " +
    utc("notice_at") + ", " + utc("registered_at") + ", registered_by, reason, orders_resolved, " +
    "state, coalesce(" + utc("live_erased_at") + ", ''), counts, coalesce(" + utc("cancelled_at") +
    ", ''), coalesce(cancelled_by, ''), copies, coalesce(" + utc("completed_at") + ", ''), " +
    "coalesce(return_to, ''), coalesce(return_key_sha256, ''), coalesce(return_file, ''), "
    "coalesce(return_sha256, ''), coalesce(return_bytes, 0), " +
    utc("notice_at + interval '72 hours'") + ", " + utc("notice_at + interval '90 days'") +
    ", extract(epoch FROM notice_at + interval '72 hours' - coalesce($1::timestamptz, now())) / "
    "3600, extract(epoch FROM notice_at + interval '90 days' - coalesce($1::timestamptz, now())) "
    "/ 3600 FROM lethe.requests";

RequestRow row_of(const Rows& r, size_t i) {
  RequestRow q;
  q.id = r.integer(i, 0);
  q.amazon_ref = r.text(i, 1);
  q.action = r.text(i, 2);
  q.scope_kind = r.text(i, 3);
  q.subjects = r.text(i, 4);
  q.marketplace = r.text(i, 5);
  q.notice_at = r.text(i, 6);
  q.registered_at = r.text(i, 7);
  q.registered_by = r.text(i, 8);
  q.reason = r.text(i, 9);
  q.orders_resolved = r.integer(i, 10);
  q.state = r.text(i, 11);
  q.live_erased_at = r.text(i, 12);
  q.counts = r.text(i, 13);
  q.cancelled_at = r.text(i, 14);
  q.cancelled_by = r.text(i, 15);
  q.copies = r.text(i, 16);
  q.completed_at = r.text(i, 17);
  q.return_to = r.text(i, 18);
  q.return_key_sha256 = r.text(i, 19);
  q.return_file = r.text(i, 20);
  q.return_sha256 = r.text(i, 21);
  q.return_bytes = r.integer(i, 22);
  q.live_deadline = r.text(i, 23);
  q.copies_deadline = r.text(i, 24);
  q.live_hours_left = std::stod(r.text(i, 25));
  q.copies_hours_left = std::stod(r.text(i, 26));
  return q;
}

std::vector<RequestRow> rows_of(const Rows& r) {
  std::vector<RequestRow> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(row_of(r, i));
  }
  return out;
}

// The root column a scope needs, or Error(config) naming the key to set.
std::string scope_column(const std::string& column, const char* key, const char* scope) {
  if (column.empty()) {
    throw Error(Exit::config,
                std::string("a ") + scope + " scope needs pii.root." + key +
                    ", the order table's column that holds it",
                std::string("set pii.root.") + key + " in the configuration (see " +
                    "config/lethe.example.toml) and run `lethe config check`");
  }
  return quote_ident(column);
}

} // namespace

std::vector<RequestRow> requests(Session& s, const Value& as_of) {
  return rows_of(s.exec(k_select + " ORDER BY notice_at, request_id", {as_of}));
}

std::vector<RequestRow> requests_with_work(Session& s) {
  return rows_of(s.exec(k_select + " WHERE state IN ('received', 'executing', 'live_erased') "
                                   "ORDER BY notice_at, request_id",
                        {std::nullopt}));
}

std::optional<RequestRow> find_request(Session& s, long long id, const Value& as_of) {
  std::vector<RequestRow> r =
      rows_of(s.exec(k_select + " WHERE request_id = $2", {as_of, std::to_string(id)}));
  if (r.empty()) {
    return std::nullopt;
  }
  return r.front();
}

std::optional<RequestRow> open_request_by_ref(Transaction& tx, const std::string& ref) {
  std::vector<RequestRow> r = rows_of(
      tx.exec(k_select + " WHERE amazon_ref = $2 AND state <> 'cancelled'", {std::nullopt, ref}));
  if (r.empty()) {
    return std::nullopt;
  }
  return r.front();
}

long long requests_registered_last_day(Transaction& tx) {
  return tx
      .exec("SELECT count(*) FROM lethe.requests WHERE registered_at > now() - interval '24 hours'")
      .integer(0, 0);
}

long long insert_request(Transaction& tx, const NewRequest& r) {
  Rows out =
      tx.exec("INSERT INTO lethe.requests (amazon_ref, action, scope_kind, subjects, marketplace, "
              "notice_at, registered_by, reason, orders_resolved, return_to, return_key_sha256) "
              "VALUES ($1, $2, $3, $4, nullif($5, ''), coalesce($6::timestamptz, now()), $7, $8, "
              "0, nullif($9, ''), nullif($10, '')) RETURNING request_id",
              {r.amazon_ref, r.action, r.scope_kind, r.subjects, r.marketplace,
               r.notice_at.empty() ? Value() : Value(r.notice_at), r.registered_by, r.reason,
               r.return_to, r.return_key_sha256});
  return out.integer(0, 0);
}

long long resolve_scope(Transaction& tx, const settings::Settings& s, long long request_id,
                        const std::string& scope_kind, const ScopeValues& v) {
  const settings::PiiTable& root = s.root.table;
  std::string insert = "INSERT INTO lethe.request_orders (request_id, order_key) SELECT DISTINCT " +
                       std::to_string(request_id) + ", " + key_text_sql("x", root.key) + " FROM " +
                       quote_ident(root.table) + " x WHERE ";
  Rows r;
  if (scope_kind == "order") {
    if (root.key.size() != 1) {
      throw Error(Exit::config,
                  "an order scope needs a one-column order key; " + root.table + "'s key has " +
                      std::to_string(root.key.size()) + " columns",
                  "name the orders by buyer or seller, or erase them by hand and record why");
    }
    std::vector<Value> ids(v.order_ids.begin(), v.order_ids.end());
    r = tx.exec(insert + "x." + quote_ident(root.key[0]) + "::text = ANY($1::text[])",
                {array_literal(ids)});
  } else if (scope_kind == "buyer") {
    std::string column = scope_column(s.root.buyer, "buyer", "buyer");
    // The identifier and its pseudonym go by COPY, never as statement text or parameters.
    tx.exec("CREATE TEMPORARY TABLE lethe_request_subject (v text NOT NULL) ON COMMIT DROP");
    std::vector<const std::string*> values{&v.buyer, &v.buyer_pseudonym};
    size_t next = 0;
    tx.copy_in("pg_temp.lethe_request_subject (v)", [&](std::string& out) {
      std::fill(out.begin(), out.end(), '\0'); // the line before: the identifier
      if (next == values.size()) {
        return false;
      }
      out.clear();
      copy_field(out, *values[next++]);
      return true;
    });
    r = tx.exec(insert + "x." + column + " IN (SELECT v FROM pg_temp.lethe_request_subject)");
  } else if (scope_kind == "seller") {
    std::string column = scope_column(s.root.seller, "seller", "seller");
    if (v.marketplace.empty()) {
      r = tx.exec(insert + "x." + column + " = $1", {v.seller});
    } else {
      std::string market = scope_column(s.root.marketplace, "marketplace", "seller/marketplace");
      r = tx.exec(insert + "x." + column + " = $1 AND x." + market + " = $2",
                  {v.seller, v.marketplace});
    }
  } else {
    throw Error(Exit::internal, "unknown scope kind " + scope_kind, "this is a bug in lethe");
  }
  long long n = static_cast<long long>(r.affected());
  tx.exec("UPDATE lethe.requests SET orders_resolved = $2 WHERE request_id = $1",
          {std::to_string(request_id), std::to_string(n)});
  return n;
}

void set_return_file(Transaction& tx, long long id, const std::string& path,
                     unsigned long long bytes, const std::string& sha256) {
  tx.exec("UPDATE lethe.requests SET return_file = $2, return_bytes = $3, return_sha256 = $4 "
          "WHERE request_id = $1",
          {std::to_string(id), path, std::to_string(bytes), sha256});
}

void set_state(Transaction& tx, long long id, const std::string& state) {
  tx.exec("UPDATE lethe.requests SET state = $2 WHERE request_id = $1",
          {std::to_string(id), state});
}

bool cancel_request(Transaction& tx, long long id, const std::string& who) {
  Rows r = tx.exec("UPDATE lethe.requests SET state = 'cancelled', cancelled_at = now(), "
                   "cancelled_by = $2 WHERE request_id = $1 AND state = 'received'",
                   {std::to_string(id), who});
  if (r.affected() == 0) {
    return false;
  }
  tx.exec("DELETE FROM lethe.request_orders WHERE request_id = $1", {std::to_string(id)});
  return true;
}

void add_request_run(Transaction& tx, long long id, long long run_id) {
  tx.exec("INSERT INTO lethe.request_runs (request_id, run_id) VALUES ($1, $2) ON CONFLICT DO "
          "NOTHING",
          {std::to_string(id), std::to_string(run_id)});
}

std::map<std::string, long long> request_progress(Transaction& tx, long long id) {
  Rows r = tx.exec("SELECT p.item, sum(p.n)::bigint FROM lethe.run_progress p JOIN "
                   "lethe.request_runs rr ON rr.run_id = p.run_id WHERE rr.request_id = $1 "
                   "GROUP BY p.item ORDER BY p.item",
                   {std::to_string(id)});
  std::map<std::string, long long> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out[r.text(i, 0)] = r.integer(i, 1);
  }
  return out;
}

Remaining orders_remaining(Transaction& tx, const settings::Settings& s, long long id) {
  const settings::PiiTable& root = s.root.table;
  Rows r = tx.exec("SELECT count(*), count(*) FILTER (WHERE x.held) FROM lethe.request_orders ro "
                   "JOIN " +
                       state_view(root.table) + " x ON " + key_text_sql("x", root.key) +
                       " = ro.order_key WHERE ro.request_id = $1",
                   {std::to_string(id)});
  return {r.integer(0, 0), r.integer(0, 1)};
}

long long request_order_count(Transaction& tx, long long id) {
  return tx
      .exec("SELECT count(*) FROM lethe.request_orders WHERE request_id = $1", {std::to_string(id)})
      .integer(0, 0);
}

std::string requested_order_sql(const std::string& key_text) {
  return key_text + " IN (SELECT ro.order_key FROM lethe.request_orders ro JOIN lethe.requests q "
                    "ON q.request_id = ro.request_id WHERE q.state IN ('received', 'executing'))";
}

void mark_live_erased(Transaction& tx, long long id, const std::string& counts_json,
                      const std::string& copies_json, const std::string& erased_at) {
  tx.exec("UPDATE lethe.requests SET state = 'live_erased', live_erased_at = $4::timestamptz, "
          "counts = $2, copies = $3 WHERE request_id = $1",
          {std::to_string(id), counts_json, copies_json, erased_at});
}

void mark_complete(Transaction& tx, long long id) {
  tx.exec("UPDATE lethe.requests SET state = 'complete', completed_at = now() WHERE request_id = "
          "$1",
          {std::to_string(id)});
  tx.exec("DELETE FROM lethe.request_orders WHERE request_id = $1", {std::to_string(id)});
}

void set_request_copies(Transaction& tx, long long id, const std::string& copies_json) {
  tx.exec("UPDATE lethe.requests SET copies = $2 WHERE request_id = $1",
          {std::to_string(id), copies_json});
}

std::string request_state(Transaction& tx, long long id) {
  Rows r = tx.exec("SELECT state FROM lethe.requests WHERE request_id = $1", {std::to_string(id)});
  return r.empty() ? std::string() : r.text(0, 0);
}

std::vector<std::string> tables_not_vacuumed_since_erase(Transaction& tx,
                                                         const std::vector<std::string>& tables,
                                                         long long id) {
  std::vector<Value> names;
  for (const std::string& t : tables) {
    names.emplace_back(quote_ident(t));
  }
  Rows r = tx.exec("SELECT t.n FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n) LEFT JOIN "
                   "pg_stat_all_tables s ON s.relid = to_regclass(t.name) WHERE s.relid IS NULL "
                   "OR coalesce(greatest(s.last_vacuum, s.last_autovacuum), '-infinity') < "
                   "(SELECT live_erased_at FROM lethe.requests WHERE request_id = $2) ORDER BY t.n",
                   {array_literal(names), std::to_string(id)});
  std::vector<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(tables.at(static_cast<size_t>(r.integer(i, 0)) - 1));
  }
  return out;
}

std::vector<RegisteredCopy> registered_copies(Session& s, long long id) {
  Rows r =
      s.exec("SELECT c.copy_no, c.what, " + utc("c.expires_at") + ", " + utc("c.registered_at") +
                 ", c.registered_by, coalesce(" + utc("c.destroyed_at") +
                 ", ''), coalesce(c.destroyed_by, ''), c.expires_at > q.notice_at + "
                 "interval '90 days' FROM lethe.request_copies c JOIN lethe.requests q ON "
                 "q.request_id = c.request_id WHERE c.request_id = $1 ORDER BY c.copy_no",
             {std::to_string(id)});
  std::vector<RegisteredCopy> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({static_cast<int>(r.integer(i, 0)), r.text(i, 1), r.text(i, 2), r.text(i, 3),
                   r.text(i, 4), r.text(i, 5), r.text(i, 6), r.text(i, 7) == "t"});
  }
  return out;
}

int add_registered_copy(Transaction& tx, long long id, const std::string& what,
                        const std::string& expires_at, const std::string& who) {
  return static_cast<int>(
      tx.exec("INSERT INTO lethe.request_copies (request_id, copy_no, what, expires_at, "
              "registered_by) SELECT $1, coalesce(max(copy_no), 0) + 1, $2, $3::timestamptz, $4 "
              "FROM lethe.request_copies WHERE request_id = $1 RETURNING copy_no",
              {std::to_string(id), what, expires_at, who})
          .integer(0, 0));
}

bool destroy_registered_copy(Transaction& tx, long long id, int no, const std::string& who) {
  return tx.exec("UPDATE lethe.request_copies SET destroyed_at = now(), destroyed_by = $3 WHERE "
                 "request_id = $1 AND copy_no = $2 AND destroyed_at IS NULL",
                 {std::to_string(id), std::to_string(no), who})
             .affected() == 1;
}

std::vector<RequestEvidence> request_evidence(Session& s, long long id) {
  Rows r = s.exec("SELECT seq, hash, " + utc("recorded_at") +
                      ", kind, actor, coalesce(db_role, ''), exit_reason, coalesce(run_id, 0) "
                      "FROM lethe.audit_log WHERE details::jsonb ->> 'request_id' = $1 ORDER BY "
                      "seq",
                  {std::to_string(id)});
  std::vector<RequestEvidence> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.integer(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                   r.text(i, 5), r.text(i, 6), r.integer(i, 7)});
  }
  return out;
}

std::optional<CopyState> copy_state(Session& s, const std::string& kind, const std::string& id) {
  Rows r = s.exec("SELECT state, coalesce(" + utc("destroyed_at") +
                      ", ''), coalesce(retention_until::text, '') FROM lethe.copies WHERE kind = "
                      "$1 AND copy_id = $2",
                  {kind, id});
  if (r.empty()) {
    return std::nullopt;
  }
  return CopyState{r.text(0, 0), r.text(0, 1), r.text(0, 2)};
}

std::vector<std::pair<long long, std::string>>
find_subjects(Transaction& tx, const settings::Settings& s,
              const std::vector<ReplaySubject>& subjects, const std::string& pads_table) {
  const settings::PiiTable& root = s.root.table;
  tx.exec("CREATE TEMPORARY TABLE lethe_replay_subjects (entry_seq bigint NOT NULL, kind text "
          "NOT NULL, subject text NOT NULL, marketplace text) ON COMMIT DROP");
  size_t next = 0;
  bool kinds[3] = {false, false, false}; // order, buyer, seller
  tx.copy_in("pg_temp.lethe_replay_subjects (entry_seq, kind, subject, marketplace)",
             [&](std::string& line) {
               if (next == subjects.size()) {
                 return false;
               }
               const ReplaySubject& r = subjects[next++];
               kinds[0] |= r.kind == "order";
               kinds[1] |= r.kind == "buyer";
               kinds[2] |= r.kind == "seller";
               line.clear();
               copy_field(line, std::to_string(r.entry_seq));
               line += '\t';
               copy_field(line, r.kind);
               line += '\t';
               copy_field(line, r.subject);
               line += '\t';
               copy_field(line, r.marketplace.empty() ? Value() : Value(r.marketplace));
               return true;
             });
  tx.exec("ANALYZE pg_temp.lethe_replay_subjects");
  // Only the HMACs some entry needs are computed, each once per row.
  std::string values;
  auto add = [&](const char* kind, const std::string& column) {
    values += std::string(values.empty() ? "" : ", ") + "('" + kind + "', " +
              hmac_hex_sql("x." + quote_ident(column) + "::text", "k") + ")";
  };
  if (kinds[0] && root.key.size() == 1) {
    add("order", root.key[0]);
  }
  if (kinds[1] && !s.root.buyer.empty()) {
    add("buyer", s.root.buyer);
  }
  if (kinds[2] && !s.root.seller.empty()) {
    add("seller", s.root.seller);
  }
  std::string key = key_text_sql("x", root.key);
  std::string market = s.root.marketplace.empty() ? std::string("true")
                                                  : "(r.marketplace IS NULL OR r.marketplace = x." +
                                                        quote_ident(s.root.marketplace) + "::text)";
  std::string sql;
  if (!values.empty()) {
    sql = "SELECT r.entry_seq, " + key + " FROM " + quote_ident(root.table) + " x CROSS JOIN " +
          pads_table + " k CROSS JOIN LATERAL (VALUES " + values +
          ") AS h(kind, v) JOIN pg_temp.lethe_replay_subjects r ON r.kind = h.kind AND "
          "r.subject = h.v AND " +
          market;
  }
  if (kinds[1] && !s.root.buyer.empty()) {
    // The purge's pseudonym of the buyer: an equality the buyer column's index can serve.
    sql += std::string(sql.empty() ? "" : " UNION ") + "SELECT r.entry_seq, " + key + " FROM " +
           quote_ident(root.table) +
           " x JOIN pg_temp.lethe_replay_subjects r ON r.kind = 'buyer' AND x." +
           quote_ident(s.root.buyer) + "::text = 'hmac:' || r.subject";
  }
  std::vector<std::pair<long long, std::string>> out;
  if (sql.empty()) {
    return out;
  }
  tx.exec("SET LOCAL enable_hashjoin = on");
  tx.exec("SET LOCAL enable_seqscan = on");
  Rows r = tx.exec("SELECT DISTINCT * FROM (" + sql + ") f ORDER BY 1, 2");
  for (size_t i = 0; i < r.size(); ++i) {
    out.emplace_back(r.integer(i, 0), r.text(i, 1));
  }
  return out;
}

bool request_exists(Transaction& tx, long long id) {
  return !tx.exec("SELECT 1 FROM lethe.requests WHERE request_id = $1", {std::to_string(id)})
              .empty();
}

void insert_replayed_request(Transaction& tx, long long id, const NewRequest& r) {
  // A replayed return request's data went to Amazon before the erase: it is not written again.
  tx.exec("INSERT INTO lethe.requests (request_id, amazon_ref, action, scope_kind, subjects, "
          "marketplace, notice_at, registered_by, reason, orders_resolved, state, return_to, "
          "return_file) VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7::timestamptz, $8, $9, 0, "
          "'executing', CASE WHEN $3 = 'return' THEN 'replayed' END, CASE WHEN $3 = 'return' "
          "THEN 'returned before the restore' END)",
          {std::to_string(id), r.amazon_ref, r.action, r.scope_kind, r.subjects, r.marketplace,
           r.notice_at, r.registered_by, r.reason});
  tx.exec("SELECT setval('lethe.requests_request_id_seq', (SELECT max(request_id) FROM "
          "lethe.requests))");
}

void add_request_orders(Transaction& tx, long long id, const std::vector<std::string>& keys) {
  std::vector<Value> v(keys.begin(), keys.end());
  tx.exec("INSERT INTO lethe.request_orders (request_id, order_key) SELECT $1, k FROM "
          "unnest($2::text[]) AS u(k) ON CONFLICT DO NOTHING",
          {std::to_string(id), array_literal(v)});
}

void drop_request_orders(Transaction& tx, long long id) {
  tx.exec("DELETE FROM lethe.request_orders WHERE request_id = $1", {std::to_string(id)});
}

} // namespace lethe::db::store
