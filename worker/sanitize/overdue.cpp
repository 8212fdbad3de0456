#include "worker/sanitize/overdue.hpp"

#include "worker/db/pii_sql.hpp"

namespace lethe::sanitize {

long long Overdue::overdue_total() const {
  long long n = 0;
  for (const TableOverdue& t : tables) {
    n += t.overdue;
  }
  return n;
}

long long Overdue::held_total() const {
  long long n = 0;
  for (const TableOverdue& t : tables) {
    n += t.held;
  }
  return n;
}

Overdue overdue_pii(db::Session& session, const settings::Settings& s, const std::string& as_of) {
  Overdue out;
  out.as_of = as_of;
  for (const settings::PiiTable* t : s.pii_tables()) {
    std::string owner = t == &s.root.table ? "r" : "c0";
    std::string sql = "SELECT count(*) FILTER (WHERE NOT r.held), count(*) FILTER (WHERE r.held), "
                      "extract(epoch FROM $1::timestamptz - min(r.due_at) FILTER (WHERE NOT "
                      "r.held)) FROM " +
                      db::state_path_to_root(s, *t) + " WHERE " + owner +
                      ".has_pii AND r.due_at <= $1::timestamptz";
    db::Rows r = session.exec(sql, {out.as_of});
    TableOverdue st;
    st.table = t->table;
    st.overdue = r.integer(0, 0);
    st.held = r.integer(0, 1);
    st.oldest_overdue_s = r.at(0, 2) ? std::stod(*r.at(0, 2)) : -1.0;
    out.tables.push_back(st);
  }
  return out;
}

} // namespace lethe::sanitize
