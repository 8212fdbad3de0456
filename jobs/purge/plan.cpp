#include "jobs/purge/plan.hpp"

#include "worker/db/catalog.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/util/error.hpp"

namespace lethe::jobs::purge {
namespace {

using db::quote_ident;
using settings::PiiTable;
using settings::Strategy;
using settings::TableStrategy;

class Builder {
public:
  Builder(db::Session& session, const settings::Settings& s, Scope scope)
      : m_session(session), m_s(s), m_scope(scope) {}

  Plan build() {
    const PiiTable& root = m_s.root.table;
    Plan p;
    p.key_type = db::column_type(m_session, root.table, root.key);
    m_key_array = "$1::" + p.key_type + "[]";
    std::string k = quote_ident(root.key);
    const std::string with_pii = "(r.has_pii" + children_with_pii(root, "r") + ")";
    std::string due = "r.due_at <= $1::timestamptz AND NOT r.held AND " + with_pii;
    if (m_scope == Scope::archived_only) {
      due += " AND EXISTS (SELECT 1 FROM lethe.archived_orders ao WHERE ao.order_key = r." + k +
             "::text)";
    }
    const std::string view = db::state_view(root.table) + " r";
    // Workers split the orders by a hash of the key, so no two ever touch the same order.
    const std::string mine = " AND (hashtext(r." + k + "::text) & 2147483647) % $3::int = $4::int";
    auto lane = [&](std::string name, const std::string& clock, const std::string& where) {
      std::string c = "r." + quote_ident(clock);
      std::string head = "SELECT " + c + "::text, r." + k + "::text FROM " + view + " WHERE " +
                         where + " AND " + due + mine;
      std::string order = " ORDER BY " + c + ", r." + k + " LIMIT $2";
      p.lanes.push_back(Lane{std::move(name), head + order,
                             head + " AND (" + c + ", r." + k +
                                 ") > ($5::timestamptz, $6::" + p.key_type + ")" + order});
    };
    const std::string shipped = quote_ident(m_s.root.shipped_at);
    lane("shipped", m_s.root.shipped_at,
         "r." + shipped + " <= $1::timestamptz - interval '" + std::to_string(m_s.retention.days) +
             " days'");
    for (const settings::NeverShipped& rule : m_s.root.never_shipped) {
      for (const std::string& status : rule.statuses) {
        lane("never shipped: " + status, rule.since,
             "r." + shipped + " IS NULL AND r." + quote_ident(m_s.root.status) + " = " +
                 db::quote_literal(status) + " AND r." + quote_ident(rule.since) +
                 " <= $1::timestamptz - interval '" + std::to_string(rule.days) + " days'");
      }
    }
    p.count_candidates = "SELECT count(*) FROM " + db::state_view(root.table) + " r WHERE " + due;
    p.count_held = "SELECT count(*) FROM " + db::state_view(root.table) +
                   " r WHERE r.due_at <= $1::timestamptz AND r.held AND " + with_pii;
    p.count_root = "SELECT count(*) FROM " + db::state_view(root.table);
    p.guard = "SELECT r." + k + "::text FROM " + db::state_view(root.table) + " r WHERE r." + k +
              " = ANY(" + m_key_array + ") AND r.due_at <= $2::timestamptz AND NOT r.held";
    std::vector<const PiiTable*> tables = m_s.pii_tables();
    for (auto it = tables.rbegin(); it != tables.rend(); ++it) {
      p.steps.push_back(step(**it));
    }
    return p;
  }

private:
  // " OR EXISTS (…)" for each child of `t` (alias `alias`) that still holds PII, recursively.
  std::string children_with_pii(const PiiTable& t, const std::string& alias) {
    std::string out;
    for (const PiiTable& c : m_s.children) {
      if (c.parent != t.table) {
        continue;
      }
      std::string a = "c" + std::to_string(++m_alias);
      out += " OR EXISTS (SELECT 1 FROM " + db::state_view(c.table) + " " + a + " WHERE " + a +
             "." + quote_ident(c.link) + " = " + alias + "." + quote_ident(c.parent_column) +
             " AND (" + a + ".has_pii" + children_with_pii(c, a) + "))";
    }
    return out;
  }

  // SQL predicate: the row `alias` of `t` belongs to the batch whose root keys are $1.
  std::string in_batch(const PiiTable& t, const std::string& alias) {
    return db::rows_of_orders(m_s, t, alias, [this](const std::string& column) {
      return column + " = ANY(" + m_key_array + ")";
    });
  }

  // The column that tells `t`'s rows apart; refuses a table without one, before any work.
  std::string row_id(const PiiTable& t) {
    std::optional<std::string> id = db::row_identity(m_session, m_s, t);
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
  static std::string constant_sets(const PiiTable& t) {
    std::string sets;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      const settings::PiiColumn& c = t.columns[i];
      if (c.strategy == Strategy::hmac) {
        continue;
      }
      std::string value = c.strategy == Strategy::set_null
                              ? std::string("NULL")
                              : "CASE WHEN v." + db::null_flag(i) + " THEN NULL ELSE " +
                                    db::quote_literal(c.value) + " END";
      sets += (sets.empty() ? "" : ", ") + quote_ident(c.name) + " = " + value;
    }
    return sets;
  }

  TableStep step(const PiiTable& t) {
    TableStep st;
    st.table = &t;
    std::string table = quote_ident(t.table);
    if (t.strategy == TableStrategy::delete_row) {
      st.sanitize = "DELETE FROM " + table + " x WHERE " + in_batch(t, "x");
      return st;
    }
    std::string id_column = row_id(t);
    std::string id = quote_ident(id_column);
    std::string sets = constant_sets(t);
    if (!sets.empty()) {
      // Only rows that still hold PII are written, matched by their own identity, so clean rows
      // make no dead tuples and the count is of rows whose PII changed.
      st.sanitize = "UPDATE " + table + " x SET " + sets + " FROM " + db::state_view(t.table) +
                    " v WHERE v." + db::k_row_id + " = x." + id + " AND v.has_pii AND " +
                    in_batch(t, "x") + " RETURNING x." + id + "::text";
    }
    for (const settings::PiiColumn& c : t.columns) {
      if (c.strategy == Strategy::hmac) {
        st.hmac_columns.push_back(c.name);
      }
    }
    if (!st.hmac_columns.empty()) {
      std::string id_type = db::column_type(m_session, t.table, id_column);
      std::string cols;
      std::string assigns;
      std::string arrays = "$1::" + id_type + "[]";
      std::string names = "id";
      for (size_t i = 0; i < st.hmac_columns.size(); ++i) {
        std::string c = quote_ident(st.hmac_columns[i]);
        cols += ", x." + c + "::text";
        assigns += (i ? ", " : "") + c + " = v.h" + std::to_string(i);
        arrays += ", $" + std::to_string(i + 2) + "::text[]";
        names += ", h" + std::to_string(i);
      }
      st.hmac_select =
          "SELECT x." + id + "::text" + cols + " FROM " + table + " x WHERE " + in_batch(t, "x");
      st.hmac_update = "UPDATE " + table + " x SET " + assigns + " FROM unnest(" + arrays +
                       ") AS v(" + names + ") WHERE x." + id + " = v.id RETURNING x." + id +
                       "::text";
    }
    return st;
  }

  db::Session& m_session;
  const settings::Settings& m_s;
  Scope m_scope;
  std::string m_key_array;
  int m_alias = 0;
};

} // namespace

Plan build_plan(db::Session& session, const settings::Settings& s, Scope scope) {
  return Builder(session, s, scope).build();
}

} // namespace lethe::jobs::purge
