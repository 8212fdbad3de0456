#include "worker/db/store/copies.hpp"

namespace lethe::db::store {

std::vector<CopyRow> copies_holding(Session& s, const std::vector<std::string>& order_keys) {
  std::vector<Value> keys(order_keys.begin(), order_keys.end());
  Rows r = s.exec("SELECT c.kind, c.copy_id, c.path, c.size_bytes, c.sha256, "
                  "c.retention_until::text, c.state FROM lethe.copies c WHERE EXISTS (SELECT 1 "
                  "FROM lethe.copy_orders o WHERE o.kind = c.kind AND o.copy_id = c.copy_id AND "
                  "o.order_key = ANY($1::text[])) ORDER BY c.kind, c.copy_id",
                  {array_literal(keys)});
  std::vector<CopyRow> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), std::stoull(r.text(i, 3)),
                   r.text(i, 4), r.text(i, 5), r.text(i, 6)});
  }
  return out;
}

} // namespace lethe::db::store
