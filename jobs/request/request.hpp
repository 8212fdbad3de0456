// Amazon deletion requests (C5, C6, C19): an operator registers Amazon's notice, the hourly
// run erases every mapped row of the orders it names through the sanitize engine
// (Selection::request, Action::erase), appends the deletion ledger (table and file), and
// follows each request to `complete`, when no copy of its orders is left online.
#pragma once

#include "worker/runtime/context.hpp"

#include <optional>
#include <string>
#include <vector>

namespace lethe::jobs::request {

// A --scope as parsed. The buyer's identifier is held only while the request is registered.
struct Scope {
  std::string kind; // order | buyer | seller
  std::vector<std::string> order_ids;
  std::string buyer;
  std::string seller;
  std::string marketplace;

  ~Scope();
};

// Parses "order:ID[,ID…]", "buyer:EMAIL" or "seller:SELLER_ID[/MARKETPLACE_ID]" read from
// `source` ("--scope", "--scope-file", "standard input"). A malformed part is Error(usage) naming
// its position, never its value.
Scope parse_scope(const std::string& text, const std::string& source);

struct AddOptions {
  std::string amazon_ref;
  std::string notice_at; // empty: now
  std::string scope;     // --scope text ("buyer:-": the email from standard input)
  std::string scope_file;
  std::string action;
  std::string return_to;
  std::string operator_name;
  std::string reason;
  std::optional<long long> confirm_count;
  bool json = false;
};
int run_add(Context& ctx, const AddOptions& opt);

struct RunOptions {
  long long request_id = 0; // 0: every request that is due work
  bool json = false;
};
int run_requests(Context& ctx, const RunOptions& opt);

// Checks the ledger file against lethe.deletion_ledger: every line parses, every link holds,
// and both hold the same entries. Exit 65 otherwise.
int run_ledger_verify(Context& ctx, bool json);

struct ReplayOptions {
  std::string into_db; // a database name on the configured server, or a DSN; empty: configured
  std::string since;   // only ledger entries erased at or after this instant
  bool json = false;
};
// Re-applies the ledger file to a database (after a restore): finds each entry's subjects by
// their keyed HMACs, erases what it finds, and puts back the ledger entries and requests the
// database lacks. A second replay finds nothing.
int run_replay(Context& ctx, const ReplayOptions& opt);

// Writes the certificate of request `id` (live_erased or complete) to `out`: html or text
// (empty: by the file's extension, .txt text, else html).
int run_certify(Context& ctx, long long id, const std::string& out, const std::string& format);

// Registers another copy of the request's subjects (a WAL archive, an export) that must go by
// the 90-day deadline; one expiring later is an alarm record at once.
int run_copy_add(Context& ctx, long long id, const std::string& what, const std::string& expires_at,
                 const std::string& operator_name);
int run_copy_destroyed(Context& ctx, long long id, int no, const std::string& operator_name,
                       const std::string& reason);

int run_list(Context& ctx, const std::string& as_of, bool json);
int run_show(Context& ctx, long long id, const std::string& as_of, bool json);
int run_cancel(Context& ctx, long long id, const std::string& operator_name,
               const std::string& reason);

} // namespace lethe::jobs::request
