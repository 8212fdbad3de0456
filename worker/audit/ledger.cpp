#include "worker/audit/ledger.hpp"

#include "worker/crypto/hash.hpp"
#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

namespace lethe::audit {
namespace {

const std::string k_zero_hash(64, '0');

bool is_hex64(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// "<seq> <hash> <json object>"
bool parse_line(const std::string& text, LedgerEntry& e) {
  size_t sp1 = text.find(' ');
  if (sp1 == std::string::npos || sp1 == 0 || sp1 > 18 || text[0] == '0' ||
      text.substr(0, sp1).find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  size_t sp2 = text.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) {
    return false;
  }
  e.seq = std::stoll(text.substr(0, sp1));
  e.hash = text.substr(sp1 + 1, sp2 - sp1 - 1);
  e.entry = text.substr(sp2 + 1);
  return is_hex64(e.hash) && nlohmann::json::accept(e.entry) && !e.entry.empty() &&
         e.entry.front() == '{';
}

std::string line_of(const LedgerEntry& e) {
  return std::to_string(e.seq) + " " + e.hash + " " + e.entry;
}

} // namespace

std::string ledger_hash(const std::string& prev_hash, const std::string& entry) {
  return crypto::hex(crypto::sha256(prev_hash + entry));
}

LedgerEntry next_ledger_entry(const LedgerEntry* prev, std::string entry) {
  LedgerEntry e;
  e.seq = prev ? prev->seq + 1 : 1;
  e.prev_hash = prev ? prev->hash : k_zero_hash;
  e.entry = std::move(entry);
  e.hash = ledger_hash(e.prev_hash, e.entry);
  return e;
}

LedgerFile parse_ledger(const std::string& text) {
  LedgerFile f;
  f.exists = true;
  size_t pos = 0;
  long long number = 0;
  std::string prev = k_zero_hash;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    ++number;
    if (nl == std::string::npos) {
      f.torn_line = number;
      break;
    }
    LedgerEntry e;
    if (parse_line(text.substr(pos, nl - pos), e)) {
      e.line = number;
      e.prev_hash = prev;
      prev = e.hash;
      f.entries.push_back(std::move(e));
    } else if (f.bad_line == 0) {
      f.bad_line = number;
    }
    pos = nl + 1;
  }
  return f;
}

LedgerFile read_ledger(const std::filesystem::path& path) {
  if (!util::exists(path)) {
    return LedgerFile{};
  }
  return parse_ledger(util::read_file(path));
}

std::string ledger_problem(const LedgerFile& file, const std::vector<LedgerEntry>& table,
                           long long missing_ok_after) {
  if (file.bad_line > 0) {
    return "line " + std::to_string(file.bad_line) + " is not '<seq> <sha256> <entry JSON>'";
  }
  std::map<long long, const LedgerEntry*> by_seq;
  for (const LedgerEntry& t : table) {
    by_seq[t.seq] = &t;
  }
  std::string prev = k_zero_hash;
  long long expected = 1;
  for (const LedgerEntry& e : file.entries) {
    std::string where = "line " + std::to_string(e.line) + " (entry " + std::to_string(e.seq) + ")";
    if (e.seq != expected) {
      return where + " follows entry " + std::to_string(expected - 1) +
             ": an entry is missing or out of order";
    }
    if (ledger_hash(prev, e.entry) != e.hash) {
      return where + " does not hash to its recorded SHA-256: the entry was altered";
    }
    auto t = by_seq.find(e.seq);
    if (t == by_seq.end()) {
      return where + " is not in lethe.deletion_ledger";
    }
    if (t->second->hash != e.hash || t->second->entry != e.entry) {
      return where + " differs from lethe.deletion_ledger's entry " + std::to_string(e.seq);
    }
    prev = e.hash;
    ++expected;
  }
  for (const LedgerEntry& t : table) {
    if (t.seq >= expected && t.seq <= missing_ok_after) {
      return "entry " + std::to_string(t.seq) + " of lethe.deletion_ledger is not in the file";
    }
  }
  return {};
}

size_t append_missing(const std::filesystem::path& path, const std::vector<LedgerEntry>& table) {
  LedgerFile file = read_ledger(path);
  std::string problem = ledger_problem(file, table, 0);
  // The database lacks the file's newest entries, and agrees with the rest: it was restored
  // from a backup taken before them.
  bool restored = file.bad_line == 0 && file.entries.size() > table.size() &&
                  std::equal(table.begin(), table.end(), file.entries.begin(),
                             [](const LedgerEntry& t, const LedgerEntry& f) {
                               return t.seq == f.seq && t.hash == f.hash && t.entry == f.entry;
                             }) &&
                  ledger_problem(file, file.entries, 0).empty();
  if (restored) {
    throw Error(Exit::data,
                "lethe.deletion_ledger lacks entries " + std::to_string(table.size() + 1) + " to " +
                    std::to_string(file.entries.back().seq) + " of the ledger file " +
                    path.string() + ": the database was restored from before them",
                "run `lethe request replay` (it erases those subjects again and puts the entries "
                "back), then `lethe request run`");
  }
  if (!problem.empty()) {
    throw Error(Exit::data, "the deletion ledger file " + path.string() + ": " + problem,
                "run `lethe request ledger verify`; restore the file from its copy or ask "
                "whoever changed it, before more entries are added");
  }
  long long newest = file.entries.empty() ? 0 : file.entries.back().seq;
  size_t added = 0;
  for (const LedgerEntry& t : table) {
    if (t.seq > newest) {
      util::append_line_atomically(path, line_of(t));
      ++added;
    }
  }
  return added;
}

std::vector<LedgerEntry> ledger_table(db::Session& s) {
  db::Rows r = s.exec("SELECT entry_seq, entry, prev_hash, hash FROM lethe.deletion_ledger ORDER "
                      "BY entry_seq");
  std::vector<LedgerEntry> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(LedgerEntry{r.integer(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), 0});
  }
  return out;
}

LedgerEntry append_ledger_in(db::Transaction& tx, long long request_id, std::string entry) {
  // Two appends cannot take the same place in the chain: the second fails on the primary key
  // and its transaction (with the erase's evidence) rolls back; request runs also hold the PII
  // writers' lock.
  db::Rows r = tx.exec("SELECT entry_seq, entry, prev_hash, hash FROM lethe.deletion_ledger ORDER "
                       "BY entry_seq DESC LIMIT 1");
  std::optional<LedgerEntry> prev;
  if (!r.empty()) {
    prev = LedgerEntry{r.integer(0, 0), r.text(0, 1), r.text(0, 2), r.text(0, 3), 0};
  }
  LedgerEntry e = next_ledger_entry(prev ? &*prev : nullptr, std::move(entry));
  tx.exec("INSERT INTO lethe.deletion_ledger (entry_seq, request_id, entry, prev_hash, hash) "
          "VALUES ($1, $2, $3, $4, $5)",
          {std::to_string(e.seq), std::to_string(request_id), e.entry, e.prev_hash, e.hash});
  return e;
}

void insert_ledger_entry(db::Transaction& tx, long long request_id, const LedgerEntry& e) {
  db::Rows r = tx.exec("SELECT entry_seq, hash FROM lethe.deletion_ledger ORDER BY entry_seq DESC "
                       "LIMIT 1");
  long long newest = r.empty() ? 0 : r.integer(0, 0);
  std::string prev = r.empty() ? k_zero_hash : r.text(0, 1);
  if (e.seq != newest + 1 || e.prev_hash != prev || ledger_hash(prev, e.entry) != e.hash) {
    throw Error(Exit::data,
                "ledger entry " + std::to_string(e.seq) +
                    " does not continue lethe.deletion_ledger (its newest entry is " +
                    std::to_string(newest) + ")",
                "the database's ledger and the file disagree: run `lethe request ledger verify` "
                "and keep both as evidence");
  }
  tx.exec("INSERT INTO lethe.deletion_ledger (entry_seq, request_id, entry, prev_hash, hash) "
          "VALUES ($1, $2, $3, $4, $5)",
          {std::to_string(e.seq), std::to_string(request_id), e.entry, e.prev_hash, e.hash});
}

} // namespace lethe::audit
