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
  std::vector<settings::Columns> unique_keys; // key columns of each unique, total, plain index
  std::vector<settings::Columns> indexes;     // key columns of every index, in index order

  // Some unique index covers only columns of `cols`, so `cols` tells rows apart.
  bool unique_over(const settings::Columns& cols) const {
    return std::any_of(unique_keys.begin(), unique_keys.end(), [&](const settings::Columns& u) {
      return std::all_of(u.begin(), u.end(), [&](const std::string& c) {
        return std::find(cols.begin(), cols.end(), c) != cols.end();
      });
    });
  }
  // Some index's leading columns are exactly `cols`, in any order.
  bool leads_with(const settings::Columns& cols) const {
    return std::any_of(indexes.begin(), indexes.end(), [&](const settings::Columns& ix) {
      return ix.size() >= cols.size() &&
             std::is_permutation(cols.begin(), cols.end(), ix.begin(), ix.begin() + cols.size());
    });
  }
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
  // One row per key column of each index, in index order; an expression column (attnum 0)
  // ends the usable prefix.
  Rows idx = session.exec(
      "SELECT i.indexrelid::bigint, k.pos, a.attname, i.indisunique AND i.indpred IS NULL AND "
      "i.indexprs IS NULL FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH "
      "ORDINALITY AS k(attnum, pos) LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
      "a.attnum = k.attnum WHERE i.indrelid = to_regclass($1) AND k.pos <= i.indnkeyatts "
      "ORDER BY 1, 2",
      {quote_ident(table)});
  std::string current;
  bool broken = false;
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx.text(i, 0) != current) {
      current = idx.text(i, 0);
      broken = false;
      info.indexes.emplace_back();
      if (idx.text(i, 3) == "t") {
        info.unique_keys.emplace_back();
      }
    }
    if (!idx.at(i, 2) || broken) {
      broken = true;
      continue;
    }
    info.indexes.back().push_back(idx.text(i, 2));
    if (idx.text(i, 3) == "t") {
      info.unique_keys.back().push_back(idx.text(i, 2));
    }
  }
  std::erase_if(info.unique_keys, [](const settings::Columns& u) { return u.empty(); });
  return info;
}

// "'x'" for one column, "(a, b)" for several: how messages name a key or link.
std::string named(const settings::Columns& cols) {
  if (cols.size() == 1) {
    return "'" + cols[0] + "'";
  }
  std::string out;
  for (const std::string& c : cols) {
    out += (out.empty() ? "" : ", ") + c;
  }
  return "(" + out + ")";
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

  // Every column of `cols` exists (each missing one reported); true when all do.
  bool columns(const TableInfo& info, const PiiTable& t, const settings::Columns& cols,
               const std::string& role, const settings::Where& where) {
    bool all = true;
    for (const std::string& c : cols) {
      all = column(info, t, c, role, where) != nullptr && all;
    }
    return all;
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
    if (&t == &m_s.root.table) {
      check_root(info, t);
    } else {
      check_child(info, t);
    }
    for (const settings::PiiColumn& c : t.columns) {
      check_pii_column(info, t, c);
    }
  }

  void check_root(const TableInfo& info, const PiiTable& t) {
    if (columns(info, t, t.key, "key", t.where) && !info.unique_over(t.key)) {
      m_report.problems.push_back(t.where + ": key " +
                                  std::string(t.key.size() == 1 ? "column " : "") + named(t.key) +
                                  " of " + t.table +
                                  (t.key.size() == 1 ? " has no unique index of its own"
                                                     : " has no unique index over its columns"));
    }
    clock(info, t, m_s.root.shipped_at, "shipped_at");
    if (!info.leads_with({m_s.root.shipped_at})) {
      m_report.warnings.push_back(t.where + ": no index leads with '" + m_s.root.shipped_at +
                                  "'; the purge will scan " + t.table);
    }
    if (!m_s.root.status.empty()) {
      column(info, t, m_s.root.status, "status", t.where);
    }
    request_columns(info, t);
    for (const auto& r : m_s.root.never_shipped) {
      clock(info, t, r.since, "since");
      if (!info.leads_with({m_s.root.status}) && !info.leads_with({r.since})) {
        m_report.warnings.push_back(r.where + ": no index leads with '" + m_s.root.status +
                                    "' or '" + r.since + "'; the purge will scan " + t.table +
                                    " for never-shipped orders");
      }
    }
  }

  void check_child(const TableInfo& info, const PiiTable& t) {
    columns(info, t, t.link, "link", t.where);
    if (!info.leads_with(t.link)) {
      m_report.warnings.push_back(t.where + ": no index leads with " + named(t.link) + " in " +
                                  t.table + "; each batch will scan it");
    }
    check_identity(info, t);
    // The link is checked against the parent's columns.
    if (const PiiTable* parent = m_s.find_table(t.parent)) {
      TableInfo pinfo = describe(m_session, parent->table);
      if (pinfo.exists) {
        columns(pinfo, *parent, t.parent_column, "parent_column", t.where);
      }
    }
  }

  void check_pii_column(const TableInfo& info, const PiiTable& t, const settings::PiiColumn& c) {
    const Column* col = column(info, t, c.name, "PII", c.where);
    if (col == nullptr) {
      return;
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
    if (c.strategy == settings::Strategy::json && col->type != "jsonb" && col->type != "json") {
      m_report.problems.push_back(c.where + ": column '" + c.name + "' is " + col->type +
                                  "; strategy json needs a json or jsonb column");
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
      if (!columns(info, t, t.key, "key", t.where)) {
        return;
      }
      bool not_null = std::all_of(t.key.begin(), t.key.end(), [&](const std::string& c) {
        return info.columns.at(c).not_null;
      });
      if (!not_null || !info.unique_over(t.key)) {
        m_report.problems.push_back(
            t.where + ": key " + (t.key.size() == 1 ? "column " : "") + named(t.key) + " of " +
            t.table +
            (t.key.size() == 1 ? " is not unique and NOT NULL" : " are not unique and NOT NULL") +
            "; name the table's primary key or a unique not-null column as key");
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
    std::vector<std::string> stale = stale_state_views(m_session, m_s);
    m_report.problems.insert(m_report.problems.end(), stale.begin(), stale.end());
  }

  Session& m_session;
  const settings::Settings& m_s;
  CatalogReport m_report;
};

} // namespace

std::optional<settings::Columns> row_identity(Session& session, const settings::Settings& s,
                                              const settings::PiiTable& t) {
  if (!t.key.empty() || &t == &s.root.table) {
    return t.key;
  }
  Rows r = session.exec(row_identity_query("to_regclass($1)"), {quote_ident(t.table)});
  if (r.size() == 0) {
    return std::nullopt;
  }
  return settings::Columns{r.text(0, 0)};
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

std::vector<std::string> stale_state_views(Session& session, const settings::Settings& s) {
  std::vector<std::string> out;
  std::string want = view_comment(s);
  for (const PiiTable* t : s.pii_tables()) {
    std::vector<std::string> views{state_view(t->table)};
    if (has_due_view(*t)) {
      views.push_back(due_view(t->table));
    }
    for (const std::string& view : views) {
      Rows r = session.exec(
          "SELECT obj_description(to_regclass($1), 'pg_class'), to_regclass($1) IS NOT NULL",
          {view});
      if (r.text(0, 1) != "t") {
        out.push_back(t->where + ": state view " + view +
                      " does not exist; apply `lethe grants` as the database owner");
      } else if (r.at(0, 0).value_or("") != want) {
        out.push_back(t->where + ": state view " + view +
                      " was made for another PII map or an older lethe; apply `lethe grants` "
                      "again");
      }
    }
  }
  return out;
}

void require_current_state_views(Session& session, const settings::Settings& s) {
  std::vector<std::string> stale = stale_state_views(session, s);
  if (!stale.empty()) {
    throw Error(Exit::config,
                stale.front() + (stale.size() > 1
                                     ? " (and " + std::to_string(stale.size() - 1) + " more)"
                                     : std::string()),
                "run `lethe grants > grants.sql` and apply it as the owner of the order tables "
                "(psql -v ON_ERROR_STOP=1 -f grants.sql); `lethe config check` lists every "
                "view");
  }
}

CatalogReport check_pii_map(Session& session, const settings::Settings& s) {
  return Checker(session, s).run();
}

} // namespace lethe::db
