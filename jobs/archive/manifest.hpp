// An archive's two JSON members, written and read with util::Json: tables.json (each archived
// table's columns and types) and manifest.json (what the archive holds, member by member).
// Internal to jobs/archive. Archives are read back by anyone's lethe with the private key, and
// anyone with the public key can write one: every reader here takes nothing on trust.
#pragma once

#include "jobs/archive/common.hpp"
#include "worker/util/json.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::jobs::archive {

// [{"table", "columns": [{"name", "type"}]}]
util::Json tables_to_json(const std::vector<TableColumns>& tables);

// tables.json as written; nullopt when it is not that shape.
std::optional<std::vector<TableColumns>> parse_tables(std::string_view text);

// One member as the manifest names it.
struct ManifestMember {
  std::string name;
  std::string sha256;
  long long rows = -1;     // data rows (the CSV header line not counted); -1 when missing
  bool first_part = false; // part-00001.csv, whose first line is the CSV header
};

// The members manifest.json names; nullopt when it is not JSON or has no members array.
std::optional<std::vector<ManifestMember>> manifest_members(std::string_view manifest);

// Whether manifest.json's "tables" is the same JSON value as tables.json; nullopt when either is
// not JSON.
std::optional<bool> manifest_tables_match(std::string_view manifest, std::string_view tables);

} // namespace lethe::jobs::archive
