// The one table of configuration keys: every key lethe reads is declared here once, with its
// type, range, meaning and the Settings member it fills (whose initializer is its default).
// The loader, `lethe config keys` and the example-config test all read this table.
//
// To add a key: add the member to its section struct in settings.hpp (with its default), one
// KeySpec line in keys.cpp binding the dotted path to it (with a range for numbers), and the key
// with its comment to config/lethe.example.toml. The loader needs no change.
#pragma once

#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace lethe::settings {

struct Settings;
using Where = std::string;

// columns: one column name, or a non-empty list of them (a composite key or link).
enum class KeyType { table, table_array, string, integer, number, boolean, string_array, columns };

// The member a key fills, as a function returning a reference into Settings; monostate for
// tables and for the PII map's keys, which the PII-map code reads itself.
using Binding = std::variant<std::monostate, long& (*)(Settings&), double& (*)(Settings&),
                             std::string& (*)(Settings&), std::filesystem::path& (*)(Settings&),
                             std::vector<std::string>& (*)(Settings&)>;

// Allowed values of an integer or number: [min, max], or (min, max] when min_open.
struct Range {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false;
  std::string_view why = {}; // appended to the message, e.g. the policy it enforces

  bool contains(double v) const { return (min_open ? v > min : v >= min) && v <= max; }
  // "between 1 and 30", "at least 1", "in (0, 1]".
  std::string text() const;
};

struct KeySpec {
  std::string_view path; // dotted; "[]" marks an element of an array of tables
  KeyType type;
  bool required; // within its enclosing table (when that table is present)
  std::string_view meaning;
  Binding bind = {};
  Range range = {};
  // For a string array: where each element's file:line:column is kept, or nullptr.
  std::vector<Where>& (*element_where)(Settings&) = nullptr;
  // Default shown for an unbound key (the PII map's); a bound key's default is its member's.
  std::string_view unbound_default = {};
  // For a string: the values it may take, separated by '|' (empty: any).
  std::string_view choices = {};
};

// All keys, parents before their children.
std::span<const KeySpec> key_table();

// The spec for the normalized `path`, or nullptr.
const KeySpec* find_key(std::string_view path);

std::string_view type_name(KeyType type);

// The key's default as text: its member in a default-constructed Settings, else unbound_default.
std::string default_text(const KeySpec& key);

} // namespace lethe::settings
