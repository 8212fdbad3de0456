#include "worker/db/catalog.hpp"

#include "worker/db/pii_sql.hpp"

#include <algorithm>
#include <map>

namespace lethe::db {
namespace {

using settings::PiiTable;

struct Column {
  std::string type;
  bool not_null = false;
  char category = 'X';
};

struct TableInfo {
  bool exists = false;
  std::map<std::string, Column> columns;
  std::vector<std::string> unique_single; // columns with a unique index of their own
  std::vector<std::string> indexed_first; // columns leading some index
};

TableInfo describe(Session& session, const std::string& table) {
  TableInfo info;
  Rows exists = session.exec("SELECT to_regclass($1) IS NOT NULL", {quote_ident(table)});
  if (exists.text(0, 0) != "t") {
    return info;
  }
  info.exists = true;
  Rows cols = session.exec(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, t.typcategory "
      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
      {quote_ident(table)});
  for (size_t i = 0; i < cols.size(); ++i) {
    info.columns[cols.text(i, 0)] =
        Column{cols.text(i, 1), cols.text(i, 2) == "t", cols.text(i, 3)[0]};
  }
  Rows idx = session.exec(
      "SELECT a.attname, i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL "
      "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
      "WHERE i.indrelid = to_regclass($1)",
      {quote_ident(table)});
  for (size_t i = 0; i < idx.size(); ++i) {
    info.indexed_first.push_back(idx.text(i, 0));
    if (idx.text(i, 1) == "t") {
      info.unique_single.push_back(idx.text(i, 0));
    }
  }
  return info;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

class Checker {
public:
  Checker(Session& session, const settings::Settings& s) : m_session(session), m_s(s) {}

  CatalogReport run() {
    for (const std::vector<const PiiTable*>& tables : {m_s.pii_tables(), m_s.kept_tables()}) {
      for (const PiiTable* t : tables) {
        check_table(*t);
      }
    }
    if (m_report.problems.empty()) {
      check_hold();
      check_views();
      check_references();
    }
    return m_report;
  }

private:
  const Column* column(const TableInfo& info, const PiiTable& t, const std::string& name,
                       const std::string& role, const settings::Where& where) {
    auto it = info.columns.find(name);
    if (it == info.columns.end()) {
      m_report.problems.push_back(where + ": " + role + " column '" + name +
                                  "' does not exist in " + t.table);
      return nullptr;
    }
    return &it->second;
  }

  void clock(const TableInfo& info, const PiiTable& t, const std::string& name,
             const std::string& role) {
    const Column* c = column(info, t, name, role, t.where);
    if (c != nullptr && c->type.rfind("timestamp", 0) != 0 && c->type != "date") {
      m_report.problems.push_back(t.where + ": " + role + " column '" + name + "' is " + c->type +
                                  ", not a timestamp");
    }
  }

  void check_table(const PiiTable& t) {
    TableInfo info = describe(m_session, t.table);
    if (!info.exists) {
      m_report.problems.push_back(t.where + ": table " + t.table +
                                  " does not exist (or is not "
                                  "visible to this role)");
      return;
    }
    bool root = &t == &m_s.root.table;
    if (root) {
      if (column(info, t, t.key, "key", t.where) != nullptr &&
          !contains(info.unique_single, t.key)) {
        m_report.problems.push_back(t.where + ": key column '" + t.key + "' of " + t.table +
                                    " has no unique index of its own");
      }
      clock(info, t, m_s.root.shipped_at, "shipped_at");
      if (!contains(info.indexed_first, m_s.root.shipped_at)) {
        m_report.warnings.push_back(t.where + ": no index leads with '" + m_s.root.shipped_at +
                                    "'; the purge will scan " + t.table);
      }
      if (!m_s.root.status.empty()) {
        column(info, t, m_s.root.status, "status", t.where);
      }
      request_columns(info, t);
      for (const auto& r : m_s.root.never_shipped) {
        clock(info, t, r.since, "since");
        if (!contains(info.indexed_first, m_s.root.status) &&
            !contains(info.indexed_first, r.since)) {
          m_report.warnings.push_back(r.where + ": no index leads with '" + m_s.root.status +
                                      "' or '" + r.since + "'; the purge will scan " + t.table +
                                      " for never-shipped orders");
        }
      }
    } else {
      column(info, t, t.link, "link", t.where);
      if (!contains(info.indexed_first, t.link)) {
        m_report.warnings.push_back(t.where + ": no index leads with '" + t.link + "' in " +
                                    t.table + "; each batch will scan it");
      }
      check_identity(info, t);
    }
    for (const settings::PiiColumn& c : t.columns) {
      const Column* col = column(info, t, c.name, "PII", c.where);
      if (col == nullptr) {
        continue;
      }
      if (c.strategy == settings::Strategy::set_null && col->not_null &&
          t.strategy == settings::TableStrategy::columns) {
        m_report.problems.push_back(c.where + ": column '" + c.name + "' of " + t.table +
                                    " is NOT NULL, so strategy null cannot apply; use constant");
      }
      if (c.strategy == settings::Strategy::hmac && col->category != 'S') {
        m_report.problems.push_back(c.where + ": column '" + c.name + "' is " + col->type +
                                    "; hmac needs a text column");
      }
      if (c.strategy == settings::Strategy::constant) {
        try {
          m_session.exec("SELECT CAST($1 AS " + col->type + ")", {c.value});
        } catch (const DbError&) {
          m_report.problems.push_back(c.where + ": the constant for '" + c.name +
                                      "' is not a valid " + col->type);
        }
      }
    }
    // Parent links are checked against the parent's columns.
    if (!root) {
      if (const PiiTable* parent = m_s.find_table(t.parent)) {
        TableInfo pinfo = describe(m_session, parent->table);
        if (pinfo.exists) {
          column(pinfo, *parent, t.parent_column, "parent_column", t.where);
        }
      }
    }
  }

  // The columns a deletion request resolves its scope by (pii.root.seller/marketplace/buyer).
  void request_columns(const TableInfo& info, const PiiTable& t) {
    for (const auto& [name, role] :
         {std::pair{&m_s.root.seller, "seller"}, std::pair{&m_s.root.marketplace, "marketplace"},
          std::pair{&m_s.root.buyer, "buyer"}}) {
      if (name->empty()) {
        continue;
      }
      const Column* c = column(info, t, *name, role, t.where);
      if (c != nullptr && c->category != 'S') {
        m_report.problems.push_back(t.where + ": " + role + " column '" + *name + "' is " +
                                    c->type + "; SP-API identifiers are text");
      }
    }
  }

  // A child whose columns are rewritten needs a row identity: the purge matches its rows by it.
  void check_identity(const TableInfo& info, const PiiTable& t) {
    if (!t.key.empty()) {
      const Column* c = column(info, t, t.key, "key", t.where);
      if (c != nullptr && (!c->not_null || !contains(info.unique_single, t.key))) {
        m_report.problems.push_back(t.where + ": key column '" + t.key + "' of " + t.table +
                                    " is not unique and NOT NULL; name the table's primary key "
                                    "or a unique not-null column as key");
      }
      return;
    }
    if (t.strategy == settings::TableStrategy::columns &&
        !row_identity(m_session, m_s, t).has_value()) {
      m_report.problems.push_back(t.where + ": " + t.table +
                                  " has no primary key or unique not-null column to tell its "
                                  "rows apart; add one (ALTER TABLE … ADD PRIMARY KEY) or name "
                                  "one with key");
    }
  }

  // Tables that reference a mapped table by foreign key but are not in the map: Amazon
  // Information a deletion request would not erase (and that would block erasing the order).
  void check_references() {
    std::vector<db::Value> mapped;
    for (const std::vector<const PiiTable*>& tables : {m_s.pii_tables(), m_s.kept_tables()}) {
      for (const PiiTable* t : tables) {
        mapped.emplace_back(quote_ident(t->table));
      }
    }
    Rows r = m_session.exec(
        "SELECT DISTINCT c.conrelid::regclass::text, c.confrelid::regclass::text FROM "
        "pg_constraint c JOIN pg_namespace n ON n.oid = (SELECT relnamespace FROM pg_class WHERE "
        "oid = c.conrelid) WHERE c.contype = 'f' AND n.nspname <> 'lethe' AND c.confrelid IN "
        "(SELECT to_regclass(x) FROM unnest($1::text[]) AS x) AND c.conrelid NOT IN (SELECT "
        "to_regclass(x) FROM unnest($1::text[]) AS x) ORDER BY 1, 2",
        {array_literal(mapped)});
    for (size_t i = 0; i < r.size(); ++i) {
      m_report.warnings.push_back(r.text(i, 0) + " references the mapped table " + r.text(i, 1) +
                                  " by foreign key but is not in the PII map; map it (its PII "
                                  "columns, or strategy = \"keep\" for Amazon Information that "
                                  "is not PII) so a deletion request erases it with its order");
    }
  }

  void check_hold() {
    if (m_s.hold.predicate.empty()) {
      return;
    }
    try {
      m_session.exec("EXPLAIN SELECT 1 FROM " + quote_ident(m_s.root.table.table) + " WHERE (" +
                     m_s.hold.predicate + ")");
    } catch (const DbError& e) {
      if (e.sqlstate() == "42501") {
        m_report.warnings.push_back(m_s.hold.where +
                                    ": this role may not read the columns of "
                                    "hold.predicate; run `lethe config check` as the owner to "
                                    "check it");
        return;
      }
      m_report.problems.push_back(m_s.hold.where + ": hold.predicate is not a valid condition on " +
                                  m_s.root.table.table + ": " + e.what());
    }
  }

  void check_views() {
    std::string want = view_comment(m_s);
    for (const PiiTable* t : m_s.pii_tables()) {
      Rows r = m_session.exec(
          "SELECT obj_description(to_regclass($1), 'pg_class'), to_regclass($1) IS NOT NULL",
          {state_view(t->table)});
      if (r.text(0, 1) != "t") {
        m_report.problems.push_back(t->where + ": state view " + state_view(t->table) +
                                    " does not exist; apply `lethe grants` as the database owner");
      } else if (r.at(0, 0).value_or("") != want) {
        m_report.problems.push_back(
            t->where + ": state view " + state_view(t->table) +
            " was made for another PII map or an older lethe; apply `lethe grants` "
            "again");
      }
    }
  }

  Session& m_session;
  const settings::Settings& m_s;
  CatalogReport m_report;
};

} // namespace

std::optional<std::string> row_identity(Session& session, const settings::Settings& s,
                                        const settings::PiiTable& t) {
  if (!t.key.empty() || &t == &s.root.table) {
    return t.key;
  }
  Rows r = session.exec(row_identity_query("to_regclass($1)"), {quote_ident(t.table)});
  if (r.size() == 0) {
    return std::nullopt;
  }
  return r.text(0, 0);
}

const std::string& TableFacts::type_of(const std::string& name) const {
  for (const auto& [column, type] : columns) {
    if (column == name) {
      return type;
    }
  }
  throw Error(Exit::config, "column " + name + " of " + table + " does not exist",
              "run `lethe config check` to compare the PII map with the database");
}

const TableFacts& CatalogFacts::of(const std::string& table) const {
  for (const TableFacts& t : tables) {
    if (t.table == table) {
      return t;
    }
  }
  throw Error(Exit::internal, "no catalog facts were read for " + table);
}

CatalogFacts read_facts(Session& session, const settings::Settings& s) {
  CatalogFacts facts;
  for (const settings::PiiTable* t : s.pii_tables()) {
    TableFacts tf;
    tf.table = t->table;
    Rows r = session.exec(k_columns_query, {quote_ident(t->table)});
    for (size_t i = 0; i < r.size(); ++i) {
      tf.columns.emplace_back(r.text(i, 0), r.text(i, 1));
    }
    tf.row_id = row_identity(session, s, *t);
    facts.tables.push_back(std::move(tf));
  }
  return facts;
}

CatalogReport check_pii_map(Session& session, const settings::Settings& s) {
  return Checker(session, s).run();
}

} // namespace lethe::db
