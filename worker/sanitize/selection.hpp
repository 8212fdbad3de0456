// What the sanitize engine works on (which orders) and what it does to them.
#pragma once

#include <string>
#include <vector>

namespace lethe::sanitize {

// Which root orders a run takes. Every kind is tested inside each batch's transaction (the
// lane's query there, or the guard for a request), so an order that stops qualifying before
// the batch is left alone.
struct Selection {
  enum class Kind {
    due,          // PII past its clock as of the run's instant, not held (the nightly purge)
    archived_due, // as `due`, and some archive holds the order (the archive job's last step)
    orders,       // exactly these orders, due or not (a few, given by key)
    request,      // the orders a deletion request resolved to (lethe.request_orders), due or not
  };
  Kind kind = Kind::due;
  // Kind::orders: the root keys, as text. Order ids are not PII; a buyer or seller scope is
  // resolved to order keys (with bind parameters) before it becomes a Selection.
  std::vector<std::string> order_keys;
  // Kind::request: the request whose resolved orders the run takes (walked from
  // lethe.request_orders, so a seller's many orders never pass through the worker's memory).
  long long request_id = 0;

  static Selection due() { return {Kind::due, {}, 0}; }
  static Selection archived_due() { return {Kind::archived_due, {}, 0}; }
  static Selection orders(std::vector<std::string> keys) {
    return {Kind::orders, std::move(keys), 0};
  }
  static Selection request(long long id) { return {Kind::request, {}, id}; }
};

// What happens to the selected orders' rows.
enum class Action {
  sanitize, // each PII column by its strategy (null, constant, hmac, json); delete-row tables go
  erase,    // every mapped row of the orders deleted, deepest table first, the root last
};

} // namespace lethe::sanitize
