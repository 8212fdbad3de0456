#include "worker/sanitize/plan.hpp"

#include "worker/db/pii_sql.hpp"
#include "worker/util/error.hpp"

#include <set>

namespace lethe::sanitize {
namespace {

using db::quote_ident;
using settings::PiiTable;
using settings::Strategy;
using settings::TableStrategy;

class Builder {
public:
  Builder(const settings::Settings& s, const db::CatalogFacts& facts, const Selection& sel,
          Action action)
      : m_s(s), m_facts(facts), m_sel(sel), m_action(action) {}

  Plan build() {
    const PiiTable& root = m_s.root.table;
    Plan p;
    // A one-column key travels as an array of its own type; a composite one as the keys'
    // canonical texts (JSON arrays), unpacked into typed columns where a statement matches.
    for (const std::string& c : root.key) {
      m_key_types.push_back(m_facts.of(root.table).type_of(c));
    }
    p.key_type = root.key.size() == 1 ? m_key_types[0] : "jsonb";
    m_key_array = "$1::" + p.key_type + "[]";
    m_k = db::columns_sql("r", root.key);
    m_key_list = db::select_list("r", root.key);
    m_key_text = db::key_text_sql("r", root.key);
    m_view = db::state_view(root.table) + " r";
    const std::string with_pii = "(r.has_pii" + children_with_pii(root, "r") + ")";
    std::string taken = selected(with_pii);
    if (m_sel.kind == Selection::Kind::orders) {
      orders_lane(p, taken);
    } else if (m_sel.kind == Selection::Kind::request) {
      request_lane(p);
    } else {
      clock_lanes(p, taken);
    }
    p.count_candidates = "SELECT count(*) FROM " + m_view + " WHERE " + taken;
    if (m_sel.kind == Selection::Kind::due) {
      p.count_due = count_root_pass(with_pii);
      p.count_children = count_children();
    }
    p.lane_guards = m_sel.kind != Selection::Kind::request;
    p.guard = "SELECT " + m_key_text + " FROM " + m_view + " WHERE " + key_match(m_k) + " AND " +
              guard_condition();
    if (m_sel.kind == Selection::Kind::request && m_action == Action::erase &&
        m_s.requests.held_orders == "erase") {
      p.guard.clear();
      p.done_by_root_delete = true;
    }
    if (m_action == Action::erase) {
      // Keep tables hang below PII tables (never the other way round): they go first.
      std::vector<const PiiTable*> kept = m_s.kept_tables();
      for (auto it = kept.rbegin(); it != kept.rend(); ++it) {
        p.steps.push_back(erase_step(**it));
      }
    }
    std::vector<const PiiTable*> tables = m_s.pii_tables();
    for (auto it = tables.rbegin(); it != tables.rend(); ++it) {
      p.steps.push_back(m_action == Action::erase ? erase_step(**it) : step(**it));
    }
    return p;
  }

private:
  // SQL predicate over the root's state view (alias r, $1 the run's instant): the orders the
  // selection takes now.
  std::string selected(const std::string& with_pii) const {
    switch (m_sel.kind) {
    case Selection::Kind::due:
      return "r.due_at <= $1::timestamptz AND NOT r.held AND " + with_pii;
    case Selection::Kind::archived_due:
      return "r.due_at <= $1::timestamptz AND NOT r.held AND " + with_pii +
             " AND EXISTS (SELECT 1 FROM lethe.archived_orders ao WHERE ao.order_key = " +
             m_key_text + ")";
    case Selection::Kind::orders:
      // Every statement of a plan takes the same parameters; an explicit list needs no clock.
      return m_key_text + " = ANY(" + orders_literal() + ") AND $1::timestamptz IS NOT NULL";
    case Selection::Kind::request:
      return "EXISTS (SELECT 1 FROM lethe.request_orders ro WHERE ro.request_id = " +
             std::to_string(m_sel.request_id) + " AND ro.order_key = " + m_key_text +
             ") AND $1::timestamptz IS NOT NULL";
    }
    return "false";
  }

  // The guard's test of a batch's order (r, $2 the run's instant) inside its transaction.
  std::string guard_condition() const {
    if (m_sel.kind == Selection::Kind::orders) {
      return "$2::timestamptz IS NOT NULL";
    }
    if (m_sel.kind == Selection::Kind::request) {
      // A held order waits for its archive unless the configuration says to erase it at once.
      return m_s.requests.held_orders == "erase" ? "$2::timestamptz IS NOT NULL"
                                                 : "$2::timestamptz IS NOT NULL AND NOT r.held";
    }
    return "r.due_at <= $2::timestamptz AND NOT r.held";
  }

  // The selection's order keys as an SQL text[] literal (order ids, never PII).
  std::string orders_literal() const {
    std::vector<db::Value> keys(m_sel.order_keys.begin(), m_sel.order_keys.end());
    return db::quote_literal(db::array_literal(keys)) + "::text[]";
  }

  // Workers split the orders by a hash of the key, so no two ever touch the same order.
  std::string mine() const {
    return " AND (hashtext(" + m_key_text + ") & 2147483647) % $3::int = $4::int";
  }

  // SQL predicate: the root key's columns `columns` (as db::columns_sql spells them) are one of
  // the batch's keys, $1.
  std::string key_match(const std::string& columns) const {
    if (m_key_types.size() == 1) {
      return columns + " = ANY(" + m_key_array + ")";
    }
    return columns + " IN (SELECT " + unpacked("u.k") + " FROM unnest(" + m_key_array +
           ") AS u(k))";
  }

  // The typed columns of the composite key whose canonical text (a JSON array) is `json`.
  std::string unpacked(const std::string& json) const {
    std::string out;
    for (size_t i = 0; i < m_key_types.size(); ++i) {
      out += (i ? ", " : "") + std::string("(") + json + " ->> " + std::to_string(i) +
             ")::" + m_key_types[i];
    }
    return out;
  }

  void add_lane(Plan& p, std::string name, const std::string& clock, const std::string& clock_type,
                const std::string& where) {
    std::string head = "SELECT " + clock + "::text, " + m_key_text + " FROM " + m_view + " WHERE " +
                       where + mine();
    std::string order = " ORDER BY " + clock + ", " + m_key_list + " LIMIT $2";
    std::string last_key = m_key_types.size() == 1 ? "$6::" + p.key_type : unpacked("$6::jsonb");
    p.lanes.push_back(Lane{std::move(name), head + order,
                           head + " AND (" + clock + ", " + m_key_list + ") > ($5::" + clock_type +
                               ", " + last_key + ")" + order});
  }

  void clock_lanes(Plan& p, const std::string& taken) {
    const std::string shipped = "r." + quote_ident(m_s.root.shipped_at);
    add_lane(p, "shipped", shipped, "timestamptz",
             shipped + " <= $1::timestamptz - interval '" + std::to_string(m_s.retention.days) +
                 " days' AND " + taken);
    for (const settings::NeverShipped& rule : m_s.root.never_shipped) {
      for (const std::string& status : rule.statuses) {
        add_lane(p, "never shipped: " + status, "r." + quote_ident(rule.since), "timestamptz",
                 shipped + " IS NULL AND r." + quote_ident(m_s.root.status) + " = " +
                     db::quote_literal(status) + " AND r." + quote_ident(rule.since) +
                     " <= $1::timestamptz - interval '" + std::to_string(rule.days) +
                     " days' AND " + taken);
      }
    }
  }

  // Explicit orders are few (one request's): walked by key, the clock column is the key's text.
  void orders_lane(Plan& p, const std::string& taken) {
    add_lane(p, "orders", m_key_text, "text", taken);
  }

  // A request's orders are walked along lethe.request_orders' primary key (request, key text);
  // the guard finds which of them the root still has, so an order already erased (by an earlier,
  // interrupted run) makes an empty batch. $6 (the last key) is the key text too.
  void request_lane(Plan& p) const {
    std::string head = "SELECT ro.order_key, ro.order_key FROM lethe.request_orders ro WHERE "
                       "ro.request_id = " +
                       std::to_string(m_sel.request_id) +
                       " AND $1::timestamptz IS NOT NULL AND (hashtext(ro.order_key) & "
                       "2147483647) % $3::int = $4::int";
    std::string order = " ORDER BY ro.order_key LIMIT $2";
    p.lanes.push_back(Lane{"request", head + order,
                           head + " AND ro.order_key > $5::text AND $6::text IS NOT NULL" + order});
  }

  // One pass over the root's state view ($1 the run's instant): all root rows, the orders the
  // purge takes, the orders held back, and the root's own rows with PII due and held. Each
  // order's flags are computed once (OFFSET 0 keeps the subquery whole), and has_pii and held
  // only for orders that are due: for the others they are NULL, and every count tests
  // lethe_due first. has_pii can be the dearest part of a row (a json column's paths read the
  // document once each), and a third of a table may not be due yet.
  std::string count_root_pass(const std::string& with_pii) const {
    const PiiTable& root = m_s.root.table;
    std::set<std::string> cols(root.key.begin(), root.key.end());
    for (const PiiTable& c : m_s.children) {
      if (c.parent == root.table) {
        cols.insert(c.parent_column.begin(), c.parent_column.end());
      }
    }
    std::string list;
    for (const std::string& c : cols) {
      list += "r." + quote_ident(c) + ", ";
    }
    const std::string clock = "r.due_at <= $1::timestamptz";
    std::string flags = "SELECT " + list + clock + " AS lethe_due, CASE WHEN " + clock +
                        " THEN r.held END AS held, CASE WHEN " + clock +
                        " THEN r.has_pii END AS has_pii FROM " + m_view + " OFFSET 0";
    std::string due = "r.lethe_due AND NOT r.held";
    std::string held = "r.lethe_due AND r.held";
    return "SELECT count(*), count(*) FILTER (WHERE " + due + " AND " + with_pii +
           "), count(*) FILTER (WHERE " + held + " AND " + with_pii + "), count(*) FILTER (WHERE " +
           due + " AND r.has_pii), count(*) FILTER (WHERE " + held + " AND r.has_pii) FROM (" +
           flags + ") r";
  }

  // Per child table: its rows with PII whose order is due, not held and held ($1 the instant).
  std::vector<std::pair<std::string, std::string>> count_children() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const PiiTable& c : m_s.children) {
      out.emplace_back(c.table, "SELECT count(*) FILTER (WHERE NOT r.held), count(*) FILTER "
                                "(WHERE r.held) FROM " +
                                    db::state_path_to_root(m_s, c) +
                                    " WHERE c0.has_pii AND r.due_at <= $1::timestamptz");
    }
    return out;
  }

  // " OR EXISTS (…)" for each child of `t` (alias `alias`) that still holds PII, recursively.
  std::string children_with_pii(const PiiTable& t, const std::string& alias) {
    std::string out;
    for (const PiiTable& c : m_s.children) {
      if (c.parent != t.table) {
        continue;
      }
      std::string a = "c" + std::to_string(++m_alias);
      out += " OR EXISTS (SELECT 1 FROM " + db::state_view(c.table) + " " + a + " WHERE " +
             db::columns_equal(a, c.link, alias, c.parent_column) + " AND (" + a + ".has_pii" +
             children_with_pii(c, a) + "))";
    }
    return out;
  }

  // SQL predicate: the row `alias` of `t` belongs to the batch whose root keys are $1.
  std::string in_batch(const PiiTable& t, const std::string& alias) {
    return db::rows_of_orders(
        m_s, t, alias, [this](const std::string& columns) { return key_match(columns); },
        db::ParentLookup::array);
  }

  // The columns that tell `t`'s rows apart; refuses a table without them, before any work.
  const settings::Columns& row_id(const PiiTable& t) {
    const std::optional<settings::Columns>& id = m_facts.of(t.table).row_id;
    if (!id) {
      throw Error(Exit::config,
                  t.where + ": " + t.table +
                      " has no primary key or unique not-null column, so its rows cannot be told "
                      "apart",
                  "add a primary key (or a unique not-null column) to " + t.table +
                      ", or name one with key in the PII map; `lethe config check` finds such "
                      "tables");
    }
    return *id;
  }

  // SET list of the null and constant columns; a NULL stays NULL (the state view tells).
  // The null flags come from the view `alias`.
  static std::string constant_sets(const PiiTable& t, const std::string& alias) {
    std::string sets;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      const settings::PiiColumn& c = t.columns[i];
      if (c.strategy == Strategy::hmac || c.strategy == Strategy::json) {
        continue;
      }
      std::string value = c.strategy == Strategy::set_null
                              ? std::string("NULL")
                              : "CASE WHEN " + alias + "." + db::null_flag(i) + " THEN NULL ELSE " +
                                    db::quote_literal(c.value) + " END";
      sets += (sets.empty() ? "" : ", ") + quote_ident(c.name) + " = " + value;
    }
    return sets;
  }

  // Erase: every row of `t` that belongs to the batch's orders, whatever it holds.
  TableStep erase_step(const PiiTable& t) {
    TableStep st;
    st.table = &t;
    st.sanitize = "DELETE FROM " + quote_ident(t.table) + " x WHERE " + in_batch(t, "x");
    st.deletes = true;
    return st;
  }

  // SET list of the hmac columns, computed in the database from the due-values view `d` (the
  // role may not read the table's PII columns) and the session's key pads `k` (see
  // TableStep::hmac): HMAC-SHA256 as RFC 2104 spells it over the value's UTF-8 bytes, the same
  // value the worker's crypto::hmac_sha256 gives. A NULL stays NULL, a pseudonym stays as it is.
  static std::string hmac_sets(const PiiTable& t) {
    std::string sets;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      if (t.columns[i].strategy != Strategy::hmac) {
        continue;
      }
      std::string v = "d." + db::hmac_value(i);
      sets += (sets.empty() ? "" : ", ") + quote_ident(t.columns[i].name) + " = CASE WHEN " + v +
              " IS NULL OR " + db::is_pseudonym_sql(v) + " THEN " + v + " ELSE 'hmac:' || " +
              db::hmac_hex_sql(v, "k") + " END";
    }
    return sets;
  }

  // SET list of the json columns, from the due-values view `d` and the key pads `k`: each
  // hmac path that needs it replaced by its pseudonym (a JSON string), then each remove path
  // taken out. Each change is tested on the document as read, and a path whose test fails
  // becomes the empty path, which jsonb_set and #- leave the document unchanged for: so a JSON
  // null or an absent key stays as it is, a path that runs into an array is never handed to
  // them (they refuse a key that is not an index), and the expression grows by one call per
  // path (a CASE around the whole document would double it with every path).
  std::string json_sets(const PiiTable& t) const {
    std::string sets;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      const settings::PiiColumn& c = t.columns[i];
      if (c.strategy != Strategy::json) {
        continue;
      }
      const std::string doc = "d." + db::json_value(i);
      auto path_if = [](const std::string& test, const settings::JsonPath& p) {
        return "CASE WHEN " + test + " THEN " + db::json_path_sql(p) + " ELSE '{}'::text[] END";
      };
      std::string e = doc;
      for (const settings::JsonPath& p : c.hmac) {
        std::string test = db::json_needs_hmac_sql(doc, p);
        std::string text = "(" + doc + " #>> " + db::json_path_sql(p) + ")";
        // jsonb_set is strict: the value is never NULL, even where the path is empty.
        e = "jsonb_set(" + e + ", " + path_if(test, p) + ", CASE WHEN " + test +
            " THEN to_jsonb('hmac:' || " + db::hmac_hex_sql(text, "k") +
            ") ELSE 'null'::jsonb END, false)";
      }
      for (const settings::JsonPath& p : c.remove) {
        e = "(" + e + " #- " + path_if(db::json_holds_sql(doc, p), p) + ")";
      }
      // jsonb_set and #- refuse a scalar document (a string, a number, JSON null) whatever the
      // path, even the empty one; such a document has nothing to change, and the row may still
      // be written for another column.
      e = "CASE WHEN jsonb_typeof(" + doc + ") IN ('object', 'array') THEN " + e + " ELSE " + doc +
          " END";
      std::string type = m_facts.of(t.table).type_of(c.name);
      sets += (sets.empty() ? "" : ", ") + quote_ident(c.name) + " = (" + e + ")::" + type;
    }
    return sets;
  }

  TableStep step(const PiiTable& t) {
    TableStep st;
    st.table = &t;
    std::string table = quote_ident(t.table);
    if (t.strategy == TableStrategy::delete_row) {
      st.sanitize = "DELETE FROM " + table + " x WHERE " + in_batch(t, "x");
      st.deletes = true;
      return st;
    }
    const settings::Columns& ids = row_id(t);
    // A table with hmac columns is read through its due-values view (d), which has the state
    // view's flags too; any other through its state view (v). A one-column identity is the
    // view's lethe_row_id; a composite one (always the map's key) is there under its own names.
    const bool due_view = db::has_due_view(t);
    st.hmac = db::uses_hmac_key(t);
    const std::string a = due_view ? "d" : "v";
    std::string same_row = ids.size() == 1 ? a + "." + db::k_row_id + " = x." + quote_ident(ids[0])
                                           : db::columns_equal(a, ids, "x", ids);
    std::string id_text = db::key_text_sql("x", ids);
    std::string sets = constant_sets(t, a);
    std::string from = db::state_view(t.table) + " v";
    if (due_view) {
      // One UPDATE writes every column, so a row makes one dead version, not two.
      for (const std::string& more : {hmac_sets(t), json_sets(t)}) {
        sets += (sets.empty() || more.empty() ? "" : ", ") + more;
      }
      from = db::due_view(t.table) + " d" +
             (st.hmac ? std::string(", ") + k_hmac_key_table + " k" : "");
    }
    if (sets.empty()) {
      return st;
    }
    // Only rows that still hold PII are written, matched by their own identity, so clean rows
    // make no dead tuples and the count is of rows whose PII changed.
    st.sanitize = "UPDATE " + table + " x SET " + sets + " FROM " + from + " WHERE " + same_row +
                  " AND " + a + ".has_pii AND " + in_batch(t, "x") + " RETURNING " + id_text;
    return st;
  }

  const settings::Settings& m_s;
  const db::CatalogFacts& m_facts;
  const Selection& m_sel;
  Action m_action;
  std::string m_key_array;
  std::vector<std::string> m_key_types; // format_type of each root key column
  std::string m_k;                      // the root key of alias r, as db::columns_sql spells it
  std::string m_key_list;               // its columns as a select list
  std::string m_key_text;               // its canonical text (db::key_text_sql)
  std::string m_view;                   // the root's state view, alias r
  int m_alias = 0;
};

} // namespace

Plan build_plan(const settings::Settings& s, const db::CatalogFacts& facts, const Selection& sel,
                Action action) {
  return Builder(s, facts, sel, action).build();
}

} // namespace lethe::sanitize
