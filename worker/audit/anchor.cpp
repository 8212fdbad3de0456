#include "worker/audit/anchor.hpp"

#include "worker/util/files.hpp"

#include <algorithm>

namespace lethe::audit {
namespace {

bool is_hex64(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// "<seq> <hash>" with seq a positive decimal without leading zeros (at most 18 digits).
bool parse_line(const std::string& text, long long& seq, std::string& hash) {
  size_t sp = text.find(' ');
  if (sp == std::string::npos || sp == 0 || sp > 18 || text[0] == '0') {
    return false;
  }
  std::string digits = text.substr(0, sp);
  if (digits.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  hash = text.substr(sp + 1);
  if (!is_hex64(hash)) {
    return false;
  }
  seq = std::stoll(digits);
  return true;
}

// The record number a damaged line begins with, or 0.
long long leading_seq(const std::string& text) {
  size_t n = 0;
  while (n < text.size() && n < 18 && text[n] >= '0' && text[n] <= '9') {
    ++n;
  }
  return n == 0 ? 0 : std::stoll(text.substr(0, n));
}

} // namespace

long long AnchorFile::newest_seq() const {
  long long newest = 0;
  for (const AnchorLine& l : lines) {
    newest = std::max(newest, l.seq);
  }
  return newest;
}

std::string AnchorFile::bad_line_text(const std::filesystem::path& path) const {
  std::string out = "anchor file " + path.string() + " line " + std::to_string(bad_line) +
                    " is not '<seq> <sha256>'";
  if (bad_line_seq > 0) {
    out += " (it begins with record " + std::to_string(bad_line_seq) + ")";
  } else {
    long long before = 0;
    for (const AnchorLine& l : lines) {
      before = l.line < bad_line ? l.seq : before;
    }
    out += before > 0 ? " (the line before it names record " + std::to_string(before) + ")"
                      : std::string();
  }
  return out;
}

AnchorFile parse_anchor(const std::string& text) {
  AnchorFile f;
  f.exists = true;
  size_t pos = 0;
  long long number = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    ++number;
    if (nl == std::string::npos) {
      f.torn_line = number; // an append that did not finish
      break;
    }
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    f.total_lines = number;
    long long seq = 0;
    std::string hash;
    if (parse_line(line, seq, hash)) {
      f.lines.push_back(AnchorLine{number, seq, hash});
    } else if (f.bad_line == 0) {
      f.bad_line = number;
      f.bad_line_seq = leading_seq(line);
    }
  }
  return f;
}

AnchorFile read_anchor(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return AnchorFile{};
  }
  return parse_anchor(util::read_file(path));
}

std::string anchor_line(long long seq, const std::string& hash) {
  return std::to_string(seq) + " " + hash;
}

} // namespace lethe::audit
