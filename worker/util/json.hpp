// JSON for what lethe writes and reads (audit counts and details, `--json` output, manifests):
// nlohmann-json with keys in insertion order. JsonObject is the older hand-written writer, kept
// until its last users move over.
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

// Appends `s` to `out` as a JSON string literal.
void append_json_string(std::string& out, std::string_view s);

class JsonObject {
public:
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, const std::string& value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, long long value);
  JsonObject& add(std::string_view key, long value) {
    return add(key, static_cast<long long>(value));
  }
  JsonObject& add(std::string_view key, int value) {
    return add(key, static_cast<long long>(value));
  }
  JsonObject& add(std::string_view key, unsigned long value) {
    return add(key, static_cast<long long>(value));
  }
  JsonObject& add(std::string_view key, double value);
  JsonObject& add(std::string_view key, bool value);
  // Adds already-serialized JSON (an object or array built elsewhere).
  JsonObject& add_raw(std::string_view key, std::string_view json);

  bool empty() const noexcept { return m_body.empty(); }
  std::string str() const { return "{" + m_body + "}"; }

private:
  void key(std::string_view k);
  std::string m_body;
};

} // namespace lethe::util
