// The audit anchor file: one line "<seq> <sha256 hex>" per committed record, appended after its
// commit, outside the database. Its format is strict: any line that does not parse is a failure
// naming its line number, except an unterminated last line, which is a torn append (a crash or a
// full disk) that the next append cuts off.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace lethe::audit {

struct AnchorLine {
  long long line = 0; // 1-based line number in the file
  long long seq = 0;
  std::string hash;
};

struct AnchorFile {
  bool exists = false;
  std::vector<AnchorLine> lines; // the lines that parse, in file order
  long long bad_line = 0;        // first line that does not parse (0: none)
  long long bad_line_seq = 0;    // the record number that line begins with (0: none)
  long long torn_line = 0;       // an unterminated last line (0: none)
  long long total_lines = 0;     // complete lines

  // The newest record any line names (0: none).
  long long newest_seq() const;
  // `bad_line` described for a message: which line, and which record it was meant to be.
  std::string bad_line_text(const std::filesystem::path& path) const;
};

// Parses the anchor text `text`.
AnchorFile parse_anchor(const std::string& text);

// Reads and parses the anchor file `path`; an absent file gives exists = false.
AnchorFile read_anchor(const std::filesystem::path& path);

// One anchor line for record `seq` with hash `hash` (no newline).
std::string anchor_line(long long seq, const std::string& hash);

} // namespace lethe::audit
