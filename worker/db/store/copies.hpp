// Typed access to the copies catalog (schema 6: lethe.copies, lethe.copy_orders): every copy
// lethe made of the orders' data (cold archives; backups later), and which orders each holds.
#pragma once

#include "worker/db/session.hpp"

#include <optional>
#include <string>
#include <vector>

namespace lethe::db::store {

struct CopyRow {
  std::string kind; // archive | backup
  std::string id;
  std::string path;
  unsigned long long size = 0;
  std::string sha256;
  std::string retention_until;
  std::string state; // spooled | cold | destroyed
};

// The copies that hold any of the orders whose canonical key texts are `order_keys` (as
// db::key_text_sql spells them), by kind and id, destroyed ones included (a request reports
// when each went).
std::vector<CopyRow> copies_holding(Session& s, const std::vector<std::string>& order_keys);
// The copies that hold any order request `request_id` resolved to (lethe.request_orders),
// found in the database: the keys never pass through memory. Every backup not yet destroyed
// counts: it holds the orders of its snapshot.
std::vector<CopyRow> copies_holding_request(Transaction& tx, long long request_id);
// The archives, in any state, that list any of request `request_id`'s resolved orders now.
std::vector<CopyRow> archives_holding_request(Transaction& tx, long long request_id);
// The copy `kind`/`id`, if the catalog has it.
std::optional<CopyRow> find_copy(Session& s, const std::string& kind, const std::string& id);

} // namespace lethe::db::store
