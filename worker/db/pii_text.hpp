// Whether an operator's free text (an incident note, an incident's reason) quotes a value held in
// a PII column of the map, so it is refused before it reaches the audit trail (C13, C18).
#pragma once

#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"

#include <string>
#include <vector>

namespace lethe::db {

// The "table.column" names of the map's PII columns (json documents excepted) holding a value of
// at least 3 characters that `text` contains as whole words: both lowercased, every run of
// characters other than letters, digits and @ . _ + - read as one space, and . _ + - at the edges
// of a word dropped (so "Jane@x.com." and "(+1-555-0100)" are found). A constant column's own
// replacement ("[redacted]") and numbers of up to 6 digits (a ZIP code) are not values that
// count. Names only, never the value. The text reaches the server by COPY into a temporary table,
// never as a statement's parameter (which a server log can keep). One scan of each column; needs
// SELECT on the PII columns and TEMPORARY on the database (the owner's connection), else
// Error(permission).
std::vector<std::string> pii_columns_quoted_in(Session& s, const settings::Settings& set,
                                               const std::string& text);

} // namespace lethe::db
