#include "worker/db/store/copies.hpp"

namespace lethe::db::store {
namespace {

const char* const k_columns = "SELECT c.kind, c.copy_id, c.path, c.size_bytes, c.sha256, "
                              "c.retention_until::text, c.state FROM lethe.copies c ";

std::vector<CopyRow> rows_of(const Rows& r) {
  std::vector<CopyRow> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), std::stoull(r.text(i, 3)),
                   r.text(i, 4), r.text(i, 5), r.text(i, 6)});
  }
  return out;
}

template <class Exec>
std::vector<CopyRow> holding(Exec& e, const std::vector<std::string>& order_keys) {
  std::vector<Value> keys(order_keys.begin(), order_keys.end());
  return rows_of(e.exec(std::string(k_columns) +
                            "WHERE EXISTS (SELECT 1 FROM lethe.copy_orders o WHERE o.kind = "
                            "c.kind AND o.copy_id = c.copy_id AND o.order_key = ANY($1::text[])) "
                            "ORDER BY c.kind, c.copy_id",
                        {array_literal(keys)}));
}

} // namespace

std::vector<CopyRow> copies_holding(Session& s, const std::vector<std::string>& order_keys) {
  return holding(s, order_keys);
}

std::vector<CopyRow> copies_holding_request(Transaction& tx, long long request_id) {
  return rows_of(tx.exec(std::string(k_columns) +
                             "WHERE EXISTS (SELECT 1 FROM lethe.copy_orders o JOIN "
                             "lethe.request_orders ro ON ro.order_key = o.order_key WHERE o.kind "
                             "= c.kind AND o.copy_id = c.copy_id AND ro.request_id = $1) "
                             // A backup holds every order of its snapshot: each one not yet
                             // destroyed may hold the request's orders.
                             "OR (c.kind = 'backup' AND c.state <> 'destroyed') ORDER BY "
                             "c.kind, c.copy_id",
                         {std::to_string(request_id)}));
}

std::vector<CopyRow> archives_holding_request(Transaction& tx, long long request_id) {
  return rows_of(tx.exec(std::string(k_columns) +
                             "WHERE c.kind = 'archive' AND EXISTS (SELECT 1 FROM lethe.copy_orders "
                             "o JOIN lethe.request_orders ro ON ro.order_key = o.order_key WHERE "
                             "o.kind = c.kind AND o.copy_id = c.copy_id AND ro.request_id = $1) "
                             "ORDER BY c.copy_id",
                         {std::to_string(request_id)}));
}

std::optional<CopyRow> find_copy(Session& s, const std::string& kind, const std::string& id) {
  std::vector<CopyRow> r =
      rows_of(s.exec(std::string(k_columns) + "WHERE c.kind = $1 AND c.copy_id = $2", {kind, id}));
  if (r.empty()) {
    return std::nullopt;
  }
  return r.front();
}

} // namespace lethe::db::store
