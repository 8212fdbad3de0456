#include "worker/sanitize/overdue.hpp"

#include "worker/db/pii_sql.hpp"
#include "worker/util/parallel.hpp"

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

namespace {

TableOverdue count_table(db::Session& session, const settings::Settings& s,
                         const settings::PiiTable& t, const std::string& as_of) {
  std::string owner = &t == &s.root.table ? "r" : "c0";
  std::string sql = "SELECT count(*) FILTER (WHERE NOT r.held), count(*) FILTER (WHERE r.held), "
                    "extract(epoch FROM $1::timestamptz - min(r.due_at) FILTER (WHERE NOT "
                    "r.held)) FROM " +
                    db::state_path_to_root(s, t) + " WHERE " + owner +
                    ".has_pii AND r.due_at <= $1::timestamptz";
  db::Rows r = session.exec(sql, {as_of});
  TableOverdue st;
  st.table = t.table;
  st.overdue = r.integer(0, 0);
  st.held = r.integer(0, 1);
  st.oldest_overdue_s = r.at(0, 2) ? std::stod(*r.at(0, 2)) : -1.0;
  return st;
}

} // namespace

Overdue overdue_pii(db::Session& session, const settings::Settings& s, const std::string& as_of,
                    db::Session* second) {
  Overdue out;
  out.as_of = as_of;
  std::vector<const settings::PiiTable*> tables = s.pii_tables();
  out.tables.resize(tables.size());
  if (second == nullptr) {
    for (size_t i = 0; i < tables.size(); ++i) {
      out.tables[i] = count_table(session, s, *tables[i], as_of);
    }
    return out;
  }
  // The root's scan on one connection, the children's on the other.
  util::in_parallel([&] { out.tables[0] = count_table(session, s, *tables[0], as_of); },
                    [&] {
                      for (size_t i = 1; i < tables.size(); ++i) {
                        out.tables[i] = count_table(*second, s, *tables[i], as_of);
                      }
                    });
  return out;
}

} // namespace lethe::sanitize
