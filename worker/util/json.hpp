// A minimal JSON object writer for audit fields and `--json` output. Keys keep insertion order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lethe::util {

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
