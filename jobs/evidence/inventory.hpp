// The record of processing as data, and the pieces the report reuses (internal to jobs/evidence).
#pragma once

#include "worker/runtime/context.hpp"
#include "worker/util/json.hpp"

#include <string>

namespace lethe::jobs::evidence {

// Every PII table and column of the map with its category, purpose, strategy, disposal, the
// roles the catalog lets read or change it, and where copies live (counts).
util::Json gather_inventory(Context& ctx);
std::string inventory_html(const util::Json& inventory);

// Writes `text` to standard output (`out` empty) or to the file `out` (temporary file, rename).
void emit(const std::string& out, const std::string& text);

} // namespace lethe::jobs::evidence
