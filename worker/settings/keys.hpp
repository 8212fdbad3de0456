// The one table of configuration keys: every key lethe reads is declared here once, with its
// type, default and meaning. The loader, `lethe config keys` and the example-config test all
// read this table.
#pragma once

#include <limits>
#include <span>
#include <string>
#include <string_view>

namespace lethe::settings {

enum class KeyType { table, table_array, string, integer, number, boolean, string_array };

struct KeySpec {
  std::string_view path; // dotted; "[]" marks an element of an array of tables
  KeyType type;
  bool required; // within its enclosing table (when that table is present)
  std::string_view default_value;
  std::string_view meaning;
  // Integer and number keys: the values allowed, checked where the value is written.
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;   // (min, max] rather than [min, max]
  std::string_view why_range{}; // appended to the range error, e.g. the policy clause
};

// "must be between 1 and 16", "must be at least 1", "must be in (0, 1]"; empty when `value`
// is allowed.
std::string range_problem(const KeySpec& k, double value);

// All keys, parents before their children.
std::span<const KeySpec> key_table();

// The spec for the normalized `path`, or nullptr.
const KeySpec* find_key(std::string_view path);

std::string_view type_name(KeyType type);

} // namespace lethe::settings
