// What the request commands share: the key their HMACs are made with, the state a request is in
// as of an instant, and how a request is printed.
#pragma once

#include "worker/db/store/requests.hpp"
#include "worker/runtime/context.hpp"
#include "worker/sanitize/engine.hpp"
#include "worker/settings/settings.hpp"
#include "worker/util/json.hpp"
#include "worker/util/secret.hpp"

#include <string>

namespace lethe::jobs::request {

// The pii.hmac_key_file key: requests and the ledger keep identifiers only as HMACs under it
// (the purge's pseudonyms use it too, so a buyer is found in both forms).
util::Secret request_key(const settings::Settings& s);

// The stored state, or "overdue" once a deadline it has not met has passed.
std::string state_as_of(const db::store::RequestRow& r);

util::Json request_json(const db::store::RequestRow& r);

// The first 12 hex digits of the first subject's HMAC: enough to tell requests apart, nothing
// to find a buyer by.
std::string fingerprint(const db::store::RequestRow& r);

// An engine job for run `run_id`, with the purge's batch size and workers, as of now.
sanitize::Job request_job(Context& ctx, long long run_id);

// The engine's erase of request `id`'s resolved orders (lethe.request_orders; at most `orders`
// of them): every mapped row, deepest table first, keep tables included, in committed batches.
// Fills job.stats (exit_reason "interrupted" when a signal stopped it). Returns the database's
// clock when the last batch had committed (ISO 8601, microseconds): the erase's time. The
// VACUUM of the tables is the caller's (the dead row versions are a copy of their own).
std::string erase_orders(sanitize::Job& job, long long id, long long orders);

// Writes request `r`'s return file (action return) before its erase, and records it.
void write_return(Context& ctx, const db::store::RequestRow& r);

void print_registered(const db::store::RequestRow& r, bool json);

} // namespace lethe::jobs::request
