#include "worker/db/pii_text.hpp"

namespace lethe::db {
namespace {

// Lowercase; every run of characters other than letters, digits, non-ASCII characters and
// @ . _ + - becomes one space; . _ + - at the edges of a word go (a sentence's full stop, a
// phone number's +); padded with one space each side, so a match is whole words.
std::string normalized(const std::string& expr) {
  return "' ' || btrim(regexp_replace(regexp_replace(regexp_replace(lower(" + expr +
         "), '[^a-z0-9@._+\\u0080-\\uFFFF-]+', ' ', 'g'), '(^| )[._+-]+|[._+-]+( |$)', "
         "'\\1\\2', 'g'), ' +', ' ', 'g')) || ' '";
}

} // namespace

std::vector<std::string> pii_columns_quoted_in(Session& s, const settings::Settings& set,
                                               const std::string& text) {
  std::vector<std::string> found;
  s.transact([&](Transaction& tx) {
    // The text reaches the server by COPY into a temporary table: server logs keep statements
    // and their parameters (a slow query's too), never COPY data.
    tx.exec("CREATE TEMPORARY TABLE lethe_free_text (t text) ON COMMIT DROP");
    bool sent = false;
    tx.copy_in("lethe_free_text (t)", [&](std::string& line) {
      if (sent) {
        return false;
      }
      copy_field(line, text);
      sent = true;
      return true;
    });
    for (const settings::PiiTable* t : set.pii_tables()) {
      for (const settings::PiiColumn& c : t->columns) {
        if (c.strategy == settings::Strategy::json) {
          continue;
        }
        std::string v = "(" + quote_ident(c.name) + ")::text";
        // Not the purge's own replacement (a constant such as "[redacted]"), and not a short
        // number (a ZIP code would match any count in a note).
        std::string not_ours = c.strategy == settings::Strategy::constant
                                   ? " AND " + v + " IS DISTINCT FROM " + quote_literal(c.value)
                                   : std::string();
        // " abc " is a 3-character value.
        std::string sql = "WITH n AS (SELECT " + normalized("t") +
                          " AS t FROM lethe_free_text) SELECT EXISTS (SELECT 1 FROM n, " +
                          quote_ident(t->table) + " CROSS JOIN LATERAL (SELECT " + normalized(v) +
                          " AS nv) x WHERE " + quote_ident(c.name) +
                          " IS NOT NULL AND length(x.nv) >= 5 AND x.nv !~ '^ [0-9]{1,6} $'" +
                          not_ours + " AND strpos(n.t, x.nv) > 0)";
        if (tx.exec(sql).text(0, 0) == "t") {
          found.push_back(t->table + "." + c.name);
        }
      }
    }
  });
  return found;
}

} // namespace lethe::db
