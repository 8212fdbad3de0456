// The deletion ledger (decision 4): every executed erase of a deletion request, as one JSON
// entry of keyed HMACs and counts (never an identifier in clear), hash-chained like the audit
// trail. It lives twice: in lethe.deletion_ledger, committed with the erase's evidence, and in
// an append-only, fsynced file outside the database (requests.ledger_file), which survives the
// restore of an old backup and is what `lethe request replay` re-applies.
//
// File format: one line "<seq> <sha256 hex> <entry JSON>" per entry, in seq order, each hash
// sha256(previous hash || entry) with 64 zeros before the first. As with the audit anchor, an
// unterminated last line is a torn append that the next append cuts off; any other line that
// does not parse is an error naming its line.
#pragma once

#include "worker/db/session.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace lethe::audit {

struct LedgerEntry {
  long long seq = 0;
  std::string entry; // the exact JSON text that was hashed
  std::string prev_hash;
  std::string hash;
  long long line = 0; // 1-based line in the file (0: from the database)
};

// sha256(prev_hash || entry), hex.
std::string ledger_hash(const std::string& prev_hash, const std::string& entry);

// The entry after `prev` (nullptr: the first) holding `entry`.
LedgerEntry next_ledger_entry(const LedgerEntry* prev, std::string entry);

struct LedgerFile {
  bool exists = false;
  std::vector<LedgerEntry> entries; // the lines that parse, in file order
  long long bad_line = 0;           // first line that does not parse (0: none)
  long long torn_line = 0;          // an unterminated last line (0: none)
};

LedgerFile parse_ledger(const std::string& text);
// An absent file gives exists = false.
LedgerFile read_ledger(const std::filesystem::path& path);

// What is wrong with `file` against the database's entries `table` (both in seq order): a line
// that does not parse, a broken link, an entry the table lacks or holds differently, or a table
// entry missing from the file (`missing_ok_after`: entries above this seq may be missing — the
// next append writes them). Empty when they agree.
std::string ledger_problem(const LedgerFile& file, const std::vector<LedgerEntry>& table,
                           long long missing_ok_after);

// Appends to `path` every entry of `table` (seq order) above the file's newest, each line all
// or nothing and fsynced (util::append_line_atomically); returns how many. Refuses (Error data)
// a file that disagrees with the table where they overlap.
size_t append_missing(const std::filesystem::path& path, const std::vector<LedgerEntry>& table);

// Every entry of lethe.deletion_ledger, in seq order.
std::vector<LedgerEntry> ledger_table(db::Session& s);

// Appends `entry` (JSON object text) for request `request_id` to lethe.deletion_ledger inside
// `tx`, chained to the newest entry; the caller appends the file (append_missing) after commit.
LedgerEntry append_ledger_in(db::Transaction& tx, long long request_id, std::string entry);

// Inserts `e` exactly as it is (from the ledger file) into lethe.deletion_ledger inside `tx`:
// a replay puts back the entries a restored database lacks, so table and file agree again.
// Refused (Error data) unless `e` continues the table's chain.
void insert_ledger_entry(db::Transaction& tx, long long request_id, const LedgerEntry& e);

} // namespace lethe::audit
