#include "jobs/archive/manifest.hpp"

namespace lethe::jobs::archive {
namespace {

std::string text_of(const util::Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace

util::Json tables_to_json(const std::vector<TableColumns>& tables) {
  util::Json out = util::Json::array();
  for (const TableColumns& t : tables) {
    util::Json cols = util::Json::array();
    for (const auto& [name, type] : t.columns) {
      cols.push_back({{"name", name}, {"type", type}});
    }
    out.push_back({{"table", t.table}, {"columns", cols}});
  }
  return out;
}

std::optional<std::vector<TableColumns>> parse_tables(std::string_view text) {
  util::Json j = util::Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) {
    return std::nullopt;
  }
  std::vector<TableColumns> out;
  for (const util::Json& t : j) {
    if (!t.is_object() || !t.contains("columns") || !t["columns"].is_array() ||
        text_of(t, "table").empty()) {
      return std::nullopt;
    }
    TableColumns tc{text_of(t, "table"), {}};
    for (const util::Json& c : t["columns"]) {
      if (!c.is_object() || text_of(c, "name").empty() || text_of(c, "type").empty()) {
        return std::nullopt;
      }
      tc.columns.emplace_back(text_of(c, "name"), text_of(c, "type"));
    }
    out.push_back(std::move(tc));
  }
  return out;
}

std::optional<std::vector<ManifestMember>> manifest_members(std::string_view manifest) {
  util::Json j = util::Json::parse(manifest, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("members") || !j["members"].is_array()) {
    return std::nullopt;
  }
  std::vector<ManifestMember> out;
  for (const util::Json& m : j["members"]) {
    if (!m.is_object()) {
      return std::nullopt;
    }
    ManifestMember mm;
    mm.name = text_of(m, "name");
    mm.sha256 = text_of(m, "sha256");
    auto rows = m.find("rows");
    mm.rows = rows != m.end() && rows->is_number_integer() ? rows->get<long long>() : -1;
    mm.first_part = mm.name.ends_with("/part-00001.csv");
    out.push_back(std::move(mm));
  }
  return out;
}

std::optional<bool> manifest_tables_match(std::string_view manifest, std::string_view tables) {
  // Compared as JSON values, key order aside (nlohmann::json keeps objects sorted).
  nlohmann::json m = nlohmann::json::parse(manifest, nullptr, false);
  nlohmann::json t = nlohmann::json::parse(tables, nullptr, false);
  if (m.is_discarded() || t.is_discarded()) {
    return std::nullopt;
  }
  return m.is_object() && m.contains("tables") && m["tables"] == t;
}

} // namespace lethe::jobs::archive
