// Reading the CSV members lethe writes (PostgreSQL's COPY … FORMAT csv): internal to
// jobs/archive. Archives are read back by anyone's lethe with the private key, so a record that
// is not well-formed CSV is reported, never guessed at.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::jobs::archive {

// One record: its bytes as stored (with its line end) and its fields. An unquoted empty field
// is SQL NULL (nullopt); a quoted empty one ("") is the empty string.
struct CsvRecord {
  std::string_view raw;
  std::vector<std::optional<std::string>> fields;
};

// Calls `each` for every record of `data` (a quoted field may hold line ends); the last record
// may lack its line end. False, with `each` called for the records before it, when a record is
// not well-formed: a quote left open, or text after a closing quote.
bool for_each_csv_record(std::string_view data, const std::function<void(const CsvRecord&)>& each);

} // namespace lethe::jobs::archive
