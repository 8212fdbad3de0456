// `lethe config discover`: PII candidates in the whole database, by name and type, and with
// --sample, counts of values that look like PII in a sample of each. Prints names and counts,
// never a value.
#include "jobs/config/config.hpp"
#include "worker/db/drift.hpp"
#include "worker/util/json.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

namespace lethe::jobs::config {

namespace {

struct Candidate {
  std::string table; // schema.table
  std::string column;
  std::string type;
  std::string rating;
  std::string status; // mapped, not_pii, mentioned, unmapped
  double rows = 0;    // the catalog's estimate
  // With --sample: sampled values and how many look like each kind of PII.
  long long sampled = -1;
  std::map<std::string, long long> looks_like;
  std::vector<std::string> json_keys; // candidate keys seen in a JSON sample (names only)
  // A column the map gives strategy json: its paths, and the sampled candidate keys that no
  // remove or hmac path reaches.
  const settings::PiiColumn* json_map = nullptr;
  std::vector<std::string> json_keys_unmapped;
};

// Unanchored patterns (PostgreSQL ARE), matched case-insensitively: they count, never show.
const std::vector<std::pair<std::string, std::string>>& patterns() {
  static const std::vector<std::pair<std::string, std::string>> k{
      {"email", "[^@[:space:]]+@[^@[:space:]]+\\.[a-z][a-z]+"},
      {"phone", "(^|[^0-9])\\+?[0-9]([ ()./-]?[0-9]){7,14}([^0-9]|$)"},
      {"iban", "(^|[^a-z0-9])[a-z][a-z][0-9][0-9]( ?[a-z0-9]){11,30}([^a-z0-9]|$)"},
      {"address", "[0-9]+[a-z]?,? +[a-z][a-z .'-]* (street|st|avenue|ave|road|rd|lane|ln|drive|"
                  "dr|boulevard|blvd|way|court|ct|place|pl|strasse|straße|weg|rue|via|calle)\\M"}};
  return k;
}

// What the map says of column `c` of catalog table `table`; `mapped` is set to its PII column.
std::string map_status(const settings::Settings& s, const std::map<std::string, std::string>& names,
                       const std::string& table, const std::string& c,
                       const settings::PiiColumn*& mapped) {
  auto it = names.find(table);
  const settings::PiiTable* t = it == names.end() ? nullptr : s.find_table(it->second);
  if (t == nullptr) {
    return "unmapped";
  }
  for (const settings::PiiColumn& pc : t->columns) {
    if (pc.name == c) {
      mapped = &pc;
      return "mapped";
    }
  }
  if (std::find(t->not_pii.begin(), t->not_pii.end(), c) != t->not_pii.end()) {
    return "not_pii";
  }
  std::vector<std::string> m = db::mentioned_columns(s, *t);
  return std::find(m.begin(), m.end(), c) != m.end() ? "mentioned" : "unmapped";
}

std::vector<Candidate> candidates(db::Session& session, const settings::Settings& s) {
  std::map<std::string, std::string> names; // catalog name -> map name
  for (const db::TableFact& t : db::read_schema_facts(session, s).tables) {
    if (!t.map_name.empty()) {
      names[t.table] = t.map_name;
    }
  }
  db::Rows r = session.exec(
      "SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
      "greatest(c.reltuples, 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped WHERE "
      "c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't' AND "
      "n.nspname NOT IN ('lethe', 'pg_catalog', 'information_schema') AND n.nspname NOT LIKE "
      "'pg\\_%' ORDER BY 1, a.attnum");
  std::vector<Candidate> out;
  for (size_t i = 0; i < r.size(); ++i) {
    Candidate c;
    c.table = r.text(i, 0);
    c.column = r.text(i, 1);
    c.type = r.text(i, 2);
    c.rows = std::stod(r.text(i, 3));
    c.rating = db::candidate_rating({c.column, c.type, false});
    if (c.rating.empty()) {
      continue;
    }
    const settings::PiiColumn* mapped = nullptr;
    c.status = map_status(s, names, c.table, c.column, mapped);
    if (mapped != nullptr && mapped->strategy == settings::Strategy::json) {
      c.json_map = mapped;
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::string sample_from(const Candidate& c, long n) {
  double pct = c.rows <= 0 ? 100.0 : std::min(100.0, 100.0 * 4.0 * static_cast<double>(n) / c.rows);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", pct);
  return db::quote_ident(c.table) + " TABLESAMPLE BERNOULLI (" + buf + ") WHERE " +
         db::quote_ident(c.column) + " IS NOT NULL LIMIT " + std::to_string(n);
}

// Whether a remove or hmac path of json column `col` is the dotted key `key` or holds it.
bool reached(const settings::PiiColumn& col, const std::string& key) {
  for (const std::vector<settings::JsonPath>* paths : {&col.remove, &col.hmac}) {
    for (const settings::JsonPath& p : *paths) {
      std::string dotted = settings::json_path_text(p);
      if (key == dotted || key.rfind(dotted + ".", 0) == 0) {
        return true;
      }
    }
  }
  return false;
}

void sample(db::Session& session, Candidate& c, long n) {
  std::string col = db::quote_ident(c.column);
  std::string sql = "SELECT count(*)";
  for (const auto& [kind, re] : patterns()) {
    sql += ", count(*) FILTER (WHERE v ~* " + db::quote_literal(re) + ")";
  }
  sql += " FROM (SELECT " + col + "::text AS v FROM " + sample_from(c, n) + ") s";
  db::Rows r = session.exec(sql);
  c.sampled = r.integer(0, 0);
  for (size_t i = 0; i < patterns().size(); ++i) {
    c.looks_like[patterns()[i].first] = r.integer(0, i + 1);
  }
  if (c.type != "json" && c.type != "jsonb") {
    return;
  }
  // Keys of the first and second level; only plain identifiers are considered, so a key that
  // is itself a value (an email used as a key) is never printed.
  db::Rows keys = session.exec(
      "WITH s AS (SELECT " + col + "::jsonb AS d FROM " + sample_from(c, n) +
      "), k1 AS (SELECT e.key, e.value FROM s, jsonb_each(CASE jsonb_typeof(s.d) WHEN 'object' "
      "THEN s.d ELSE '{}' END) e) SELECT DISTINCT key FROM k1 UNION SELECT DISTINCT k1.key || "
      "'.' || e.key FROM k1, jsonb_each(CASE jsonb_typeof(k1.value) WHEN 'object' THEN "
      "k1.value ELSE '{}' END) e ORDER BY 1");
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string k = keys.text(i, 0);
    bool plain = k.size() <= 128 && std::all_of(k.begin(), k.end(), [](char ch) {
                   return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.';
                 });
    std::string last = k.substr(k.rfind('.') == std::string::npos ? 0 : k.rfind('.') + 1);
    if (plain && db::pii_like_name(last)) {
      c.json_keys.push_back(k);
      if (c.json_map != nullptr && !reached(*c.json_map, k)) {
        c.json_keys_unmapped.push_back(k);
      }
    }
  }
}

util::Json to_json(const Candidate& c) {
  util::Json j = {{"table", c.table},
                  {"column", c.column},
                  {"type", c.type},
                  {"rating", c.rating},
                  {"map", c.status}};
  if (c.sampled >= 0) {
    j["sampled"] = c.sampled;
    j["looks_like"] = c.looks_like;
    j["json_keys"] = c.json_keys;
    if (c.json_map != nullptr) {
      j["json_keys_unmapped"] = c.json_keys_unmapped;
    }
  }
  return j;
}

void print(const Candidate& c) {
  std::string line = "  " + c.table + "." + c.column + "  " + c.type + "  candidate by " +
                     c.rating + "  " + c.status;
  if (c.sampled >= 0) {
    line += "  sample " + std::to_string(c.sampled) + ":";
    for (const auto& [kind, n] : c.looks_like) {
      line += " " + kind + " " + std::to_string(n);
    }
    for (const std::string& k : c.json_keys) {
      line += (&k == &c.json_keys.front() ? "  keys " : ", ") + k;
    }
    for (const std::string& k : c.json_keys_unmapped) {
      line +=
          (&k == &c.json_keys_unmapped.front() ? "  NOT REACHED by the map's paths: " : ", ") + k;
    }
  }
  std::cout << line << "\n";
}

} // namespace

int run_config_discover(Context& ctx, long sample_rows, bool json) {
  if (sample_rows < 0 || sample_rows > 1000000) {
    throw Error(Exit::usage, "--sample must be between 1 and 1000000 rows",
                "e.g. --sample 1000: enough to see a pattern, cheap on a large table");
  }
  db::Session& session = ctx.ready_db();
  std::vector<Candidate> found = candidates(session, ctx.settings());
  size_t unmapped = 0;
  for (Candidate& c : found) {
    if (sample_rows > 0) {
      sample(session, c, sample_rows);
    }
    unmapped += c.status == "unmapped" ? 1 : 0;
  }
  if (json) {
    util::Json list = util::Json::array();
    for (const Candidate& c : found) {
      list.push_back(to_json(c));
    }
    std::cout << util::dump({{"candidates", list}, {"unmapped", unmapped}}) << "\n";
    return 0;
  }
  std::cout << "PII candidates (text-like columns; rated by name and type"
            << (sample_rows > 0 ? "; counts of values in a sample of up to " +
                                      std::to_string(sample_rows) + " rows that look like PII"
                                : "")
            << "): " << found.size() << ", " << unmapped << " unmapped\n";
  for (const Candidate& c : found) {
    print(c);
  }
  if (unmapped > 0) {
    std::cout << "HINT: map each unmapped candidate that holds PII, or list it in its table's "
                 "not_pii; `lethe check` alarms on those in mapped tables\n";
  }
  if (std::any_of(found.begin(), found.end(),
                  [](const Candidate& c) { return !c.json_keys_unmapped.empty(); })) {
    std::cout << "HINT: add each key NOT REACHED that holds PII to its column's remove or hmac "
                 "paths\n";
  }
  return 0;
}

} // namespace lethe::jobs::config
