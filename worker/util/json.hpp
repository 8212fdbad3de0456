// JSON for what lethe writes and reads (audit counts and details, `--json` output, manifests):
// nlohmann-json with keys in insertion order.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lethe::util {

using Json = nlohmann::ordered_json;

// Compact JSON text of `j`. A string that is not valid UTF-8 (an operator's --reason, a file
// name) has its bad bytes replaced by U+FFFD instead of failing the run.
std::string dump(const Json& j);

// Parses JSON text lethe wrote; throws Error(data) naming `what` (never the text) when it is not.
Json parse_json(std::string_view text, const std::string& what);

// The parsed value of `text` when it is JSON, else `text` as a JSON string: for showing stored
// evidence as it is, even a row someone edited by hand.
Json json_or_text(std::string_view text);

} // namespace lethe::util
