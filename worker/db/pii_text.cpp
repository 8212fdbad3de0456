#include "worker/db/pii_text.hpp"

namespace lethe::db {
namespace {

std::string normalized(const std::string& expr) {
  return "' ' || btrim(regexp_replace(lower(" + expr + "), '[^[:alnum:]@.+_-]+', ' ', 'g')) || ' '";
}

} // namespace

std::vector<std::string> pii_columns_quoted_in(Session& s, const settings::Settings& set,
                                               const std::string& text) {
  std::vector<std::string> found;
  for (const settings::PiiTable* t : set.pii_tables()) {
    for (const settings::PiiColumn& c : t->columns) {
      if (c.strategy == settings::Strategy::json) {
        continue;
      }
      std::string v = "(" + quote_ident(c.name) + ")::text";
      // The note ($1) is normalized once, each value once; " abc " is a 3-character value.
      std::string sql = "WITH n AS (SELECT " + normalized("$1::text") +
                        " AS t) SELECT EXISTS (SELECT 1 FROM n, " + quote_ident(t->table) +
                        " CROSS JOIN LATERAL (SELECT " + normalized(v) + " AS nv) x WHERE " +
                        quote_ident(c.name) + " IS NOT NULL AND length(x.nv) >= 5 AND " +
                        "strpos(n.t, x.nv) > 0)";
      if (s.exec(sql, {text}).text(0, 0) == "t") {
        found.push_back(t->table + "." + c.name);
      }
    }
  }
  return found;
}

} // namespace lethe::db
