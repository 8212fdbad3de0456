#include "worker/db/drift.hpp"

#include "worker/util/error.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace lethe::db {

namespace {

using settings::PiiTable;
using settings::Settings;

// The words of a column name: split at '_', digits and lower-to-upper case changes, lower-cased.
std::vector<std::string> words(const std::string& name) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) {
      out.push_back(cur);
      cur.clear();
    }
  };
  for (size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (!std::isalpha(c)) {
      flush();
      continue;
    }
    bool upper = std::isupper(c) != 0;
    bool after_lower = i > 0 && std::islower(static_cast<unsigned char>(name[i - 1])) != 0;
    // "IPAddress": the upper-case run ends one letter before the next lower-case one.
    bool run_ends = i > 0 && i + 1 < name.size() &&
                    std::isupper(static_cast<unsigned char>(name[i - 1])) != 0 &&
                    std::islower(static_cast<unsigned char>(name[i + 1])) != 0;
    if (upper && (after_lower || run_ends)) {
      flush();
    }
    cur += static_cast<char>(std::tolower(c));
  }
  flush();
  return out;
}

const std::set<std::string>& candidate_words() {
  static const std::set<std::string> k{
      "email",   "mail",     "phone",   "tel",          "mobile",      "name",      "first",
      "last",    "address",  "street",  "city",         "zip",         "postcode",  "postal",
      "ip",      "birth",    "dob",     "tax",          "vat",         "iban",      "card",
      "message", "note",     "comment", "instructions", "instruction", "firstname", "lastname",
      "surname", "birthday", "zipcode", "telephone",    "cell"};
  return k;
}

struct TableDiff {
  const Settings& s;
  std::vector<DriftItem>& out;

  void add(std::string kind, const TableFact& t, const std::string& column, std::string detail,
           std::string candidate, bool alarm, std::string hint) {
    out.push_back(DriftItem{std::move(kind), t.table, column, std::move(detail),
                            std::move(candidate), alarm, std::move(hint)});
  }

  static std::string map_hint(const TableFact& t, const std::string& column) {
    return "map " + column + " in the PII map's entry for " + t.map_name +
           " with a strategy, or list it in that entry's not_pii if it holds no PII; then run "
           "`lethe config approve`";
  }

  // A mapped table: every column the map does not mention that can hold PII is an alarm; the
  // map's own columns must exist; other changes since the approval are listed.
  void mapped(const TableFact& live, const TableFact* approved) {
    const PiiTable* entry = s.find_table(live.map_name);
    std::vector<std::string> mentioned =
        entry ? mentioned_columns(s, *entry) : std::vector<std::string>{};
    std::set<std::string> known(mentioned.begin(), mentioned.end());
    std::map<std::string, const ColumnFact*> before;
    if (approved != nullptr) {
      for (const ColumnFact& c : approved->columns) {
        before[c.name] = &c;
      }
    }
    std::set<std::string> now;
    for (const ColumnFact& c : live.columns) {
      now.insert(c.name);
      std::string rating = candidate_rating(c);
      auto old = before.find(c.name);
      if (known.count(c.name) == 0 && !rating.empty()) {
        add("unmentioned_column", live, c.name,
            c.type +
                (approved != nullptr && old == before.end() ? ", added since the approval" : ""),
            rating, true, map_hint(live, c.name));
        continue;
      }
      if (approved == nullptr) {
        continue;
      }
      if (old == before.end()) {
        add("column_added", live, c.name, c.type, rating, false,
            "the map covers it; `lethe config approve` records it");
      } else {
        changed(live, c, *old->second, false);
      }
    }
    if (entry != nullptr) {
      for (const std::string& m : mentioned) {
        if (now.count(m) == 0) {
          add("mapped_column_missing", live, m, "named by the PII map", "", true,
              "the table has no such column: fix the PII map (`lethe config check` names the "
              "line)");
        }
      }
    }
    dropped(live, approved, now);
  }

  // A table beside or below a mapped one, not in the map: changes since the approval.
  void neighbour(const TableFact& live, const TableFact* approved) {
    if (approved == nullptr) {
      bool capable = false;
      for (const ColumnFact& c : live.columns) {
        capable = capable || !candidate_rating(c).empty();
      }
      add("table_added", live, "", std::to_string(live.columns.size()) + " columns",
          capable ? "type" : "", capable,
          "map it (its PII columns, or strategy = \"keep\" and not_pii for Amazon Information "
          "that is not PII), or `lethe config approve` if it holds neither");
      return;
    }
    std::map<std::string, const ColumnFact*> before;
    for (const ColumnFact& c : approved->columns) {
      before[c.name] = &c;
    }
    std::set<std::string> now;
    for (const ColumnFact& c : live.columns) {
      now.insert(c.name);
      auto old = before.find(c.name);
      std::string rating = candidate_rating(c);
      if (old == before.end()) {
        // An alarm when its name says PII too: tables beside the map change for many reasons.
        add("column_added", live, c.name, c.type, rating, rating == "name and type",
            "map the table if " + c.name + " holds PII, else `lethe config approve`");
      } else {
        changed(live, c, *old->second, true);
      }
    }
    dropped(live, approved, now);
  }

  void changed(const TableFact& t, const ColumnFact& c, const ColumnFact& old, bool neighbour) {
    if (c.type != old.type) {
      std::string rating = candidate_rating(c);
      add("column_retyped", t, c.name, old.type + " -> " + c.type, rating,
          neighbour && !rating.empty() && candidate_rating(old).empty(),
          "check what it holds now; `lethe config approve` records it");
    }
    if (c.not_null != old.not_null) {
      add("nullability_changed", t, c.name, c.not_null ? "now NOT NULL" : "now nullable", "", false,
          "`lethe config approve` records it");
    }
  }

  void dropped(const TableFact& t, const TableFact* approved, const std::set<std::string>& now) {
    if (approved == nullptr) {
      return;
    }
    for (const ColumnFact& c : approved->columns) {
      if (now.count(c.name) == 0) {
        add("column_dropped", t, c.name, c.type, "", false, "`lethe config approve` records it");
      }
    }
  }
};

} // namespace

util::Json to_json(const SchemaFacts& f) {
  util::Json tables = util::Json::array();
  for (const TableFact& t : f.tables) {
    util::Json cols = util::Json::array();
    for (const ColumnFact& c : t.columns) {
      cols.push_back(util::Json::array({c.name, c.type, c.not_null}));
    }
    tables.push_back({{"table", t.table}, {"map_name", t.map_name}, {"columns", cols}});
  }
  return {{"tables", tables}};
}

SchemaFacts schema_facts_from_json(const util::Json& j) {
  SchemaFacts f;
  try {
    for (const util::Json& t : j.at("tables")) {
      TableFact tf;
      tf.table = t.at("table").get<std::string>();
      tf.map_name = t.at("map_name").get<std::string>();
      for (const util::Json& c : t.at("columns")) {
        tf.columns.push_back(
            {c.at(0).get<std::string>(), c.at(1).get<std::string>(), c.at(2).get<bool>()});
      }
      f.tables.push_back(std::move(tf));
    }
  } catch (const util::Json::exception&) {
    throw Error(Exit::data, "the approved schema in the audit trail is not in lethe's format",
                "run `lethe audit verify`; if the chain holds, approve the schema again");
  }
  return f;
}

SchemaFacts read_schema_facts(Session& session, const Settings& s) {
  std::string mapped;
  for (const std::vector<const PiiTable*>& list : {s.pii_tables(), s.kept_tables()}) {
    for (const PiiTable* t : list) {
      mapped += std::string(mapped.empty() ? "" : ", ") + "(" + quote_literal(t->table) +
                ", to_regclass(" + quote_literal(quote_ident(t->table)) + ")::oid)";
    }
  }
  Rows r = session.exec(
      "WITH mapped(map_name, oid) AS (VALUES " + mapped +
      "), reach AS (SELECT c.oid, c.relname, c.relnamespace, m.map_name FROM pg_class c LEFT "
      "JOIN mapped m ON m.oid = c.oid WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
      "AND c.relpersistence <> 't' AND (m.oid IS NOT NULL OR c.relnamespace IN (SELECT "
      "relnamespace FROM pg_class WHERE oid IN (SELECT oid FROM mapped)) OR EXISTS (SELECT 1 "
      "FROM pg_constraint f WHERE f.contype = 'f' AND f.conrelid = c.oid AND f.confrelid IN "
      "(SELECT oid FROM mapped)))) SELECT n.nspname || '.' || r.relname, coalesce(r.map_name, "
      "''), a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM reach r JOIN "
      "pg_namespace n ON n.oid = r.relnamespace JOIN pg_attribute a ON a.attrelid = r.oid AND "
      "a.attnum > 0 AND NOT a.attisdropped WHERE n.nspname <> 'lethe' ORDER BY 1, a.attnum");
  SchemaFacts f;
  for (size_t i = 0; i < r.size(); ++i) {
    if (f.tables.empty() || f.tables.back().table != r.text(i, 0)) {
      f.tables.push_back(TableFact{r.text(i, 0), r.text(i, 1), {}});
    }
    f.tables.back().columns.push_back({r.text(i, 2), r.text(i, 3), r.text(i, 4) == "t"});
  }
  return f;
}

bool pii_like_name(const std::string& column) {
  for (std::string w : words(column)) {
    if (candidate_words().count(w) != 0) {
      return true;
    }
    if (w.size() > 2 && w.back() == 's' && candidate_words().count(w.substr(0, w.size() - 1))) {
      return true;
    }
  }
  return false;
}

bool pii_capable_type(const std::string& format_type) {
  std::string t = format_type;
  if (t.size() > 2 && t.compare(t.size() - 2, 2, "[]") == 0) {
    t.resize(t.size() - 2);
  }
  t = t.substr(0, t.find('('));
  static const std::set<std::string> k{"text",      "character varying",
                                       "character", "\"char\"",
                                       "json",      "jsonb",
                                       "inet",      "cidr",
                                       "citext",    "bytea",
                                       "xml",       "name"};
  return k.count(t) != 0;
}

std::string candidate_rating(const ColumnFact& c) {
  if (!pii_capable_type(c.type)) {
    return "";
  }
  return pii_like_name(c.name) ? "name and type" : "type";
}

std::vector<std::string> mentioned_columns(const Settings& s, const PiiTable& t) {
  std::vector<std::string> out;
  auto add = [&](const std::string& c) {
    if (!c.empty() && std::find(out.begin(), out.end(), c) == out.end()) {
      out.push_back(c);
    }
  };
  for (const settings::PiiColumn& c : t.columns) {
    add(c.name);
  }
  for (const std::string& c : t.key) {
    add(c);
  }
  for (const std::string& c : t.link) {
    add(c);
  }
  for (const std::string& c : t.not_pii) {
    add(c);
  }
  if (&t == &s.root.table) {
    for (const std::string& c :
         {s.root.shipped_at, s.root.status, s.root.seller, s.root.marketplace, s.root.buyer}) {
      add(c);
    }
    for (const settings::NeverShipped& n : s.root.never_shipped) {
      add(n.since);
    }
  }
  for (const std::vector<const PiiTable*>& list : {s.pii_tables(), s.kept_tables()}) {
    for (const PiiTable* child : list) {
      if (child->parent == t.table) {
        for (const std::string& c : child->parent_column) {
          add(c);
        }
      }
    }
  }
  return out;
}

std::optional<Approval> last_approval(Session& session) {
  Rows r =
      session.exec("SELECT seq, to_char(recorded_at AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), actor, details FROM lethe.audit_log "
                   "WHERE job = 'config approve' AND exit_reason = 'approved' ORDER BY seq DESC "
                   "LIMIT 1");
  if (r.size() == 0) {
    return std::nullopt;
  }
  util::Json details = util::parse_json(r.text(0, 3), "an approval's audit details");
  if (!details.contains("schema")) {
    throw Error(Exit::data, "audit record " + r.text(0, 0) + " approves no schema",
                "run `lethe audit verify`; if the chain holds, approve the schema again");
  }
  return Approval{r.integer(0, 0), r.text(0, 1), r.text(0, 2),
                  schema_facts_from_json(details["schema"])};
}

std::vector<DriftItem> drift(const Settings& s, const SchemaFacts& live,
                             const std::optional<Approval>& approved) {
  std::vector<DriftItem> out;
  if (!approved) {
    out.push_back(DriftItem{"not_approved", "", "", "no `lethe config approve` on record", "", true,
                            "review the map's reach (`lethe config check`), then run `lethe "
                            "config approve --operator NAME --reason TEXT`"});
  }
  std::map<std::string, const TableFact*> before;
  if (approved) {
    for (const TableFact& t : approved->facts.tables) {
      before[t.table] = &t;
    }
  }
  TableDiff diff{s, out};
  std::set<std::string> now;
  for (const TableFact& t : live.tables) {
    now.insert(t.table);
    auto old = before.find(t.table);
    const TableFact* prev = old == before.end() ? nullptr : old->second;
    if (!t.map_name.empty()) {
      diff.mapped(t, approved ? (prev ? prev : &t) : nullptr);
    } else if (approved) {
      diff.neighbour(t, prev);
    }
  }
  for (const auto& [name, t] : before) {
    if (now.count(name) == 0) {
      diff.add("table_dropped", *t, "", "", "", false, "`lethe config approve` records it");
    }
  }
  return out;
}

std::vector<DriftItem> current_drift(Session& session, const Settings& s) {
  return drift(s, read_schema_facts(session, s), last_approval(session));
}

util::Json to_json(const std::vector<DriftItem>& items) {
  util::Json out = util::Json::array();
  for (const DriftItem& d : items) {
    out.push_back({{"kind", d.kind},
                   {"table", d.table},
                   {"column", d.column},
                   {"detail", d.detail},
                   {"pii_candidate", d.candidate},
                   {"alarm", d.alarm},
                   {"hint", d.hint}});
  }
  return out;
}

std::string describe(const std::vector<DriftItem>& items) {
  std::string out = "schema drift against the last approval: " + std::to_string(items.size()) +
                    " items, " + std::to_string(alarm_count(items)) + " could hold PII\n";
  for (const DriftItem& d : items) {
    std::string where = d.table + (d.column.empty() ? "" : "." + d.column);
    out += std::string("  ") + (d.alarm ? "ALARM " : "note  ") + d.kind +
           (where.empty() ? "" : " " + where) + (d.detail.empty() ? "" : " (" + d.detail + ")") +
           (d.candidate.empty() ? "" : ", PII candidate by " + d.candidate) +
           "\n    HINT: " + d.hint + "\n";
  }
  return out;
}

size_t alarm_count(const std::vector<DriftItem>& items) {
  return static_cast<size_t>(
      std::count_if(items.begin(), items.end(), [](const DriftItem& d) { return d.alarm; }));
}

} // namespace lethe::db
