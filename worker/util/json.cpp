#include "worker/util/json.hpp"

#include "worker/util/error.hpp"

#include <cmath>
#include <cstdio>

namespace lethe::util {

std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json parse_json(std::string_view text, const std::string& what) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    throw Error(Exit::data, what + " is not valid JSON",
                "it was changed outside lethe or is damaged; compare it with the audit trail");
  }
  return j;
}

Json json_or_text(std::string_view text) {
  Json j = Json::parse(text, nullptr, false);
  return j.is_discarded() ? Json(std::string(text)) : j;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
        out += buf;
      } else {
        out += c;
      }
    }
  }
  out += '"';
}

void JsonObject::key(std::string_view k) {
  if (!m_body.empty()) {
    m_body += ',';
  }
  append_json_string(m_body, k);
  m_body += ':';
}

JsonObject& JsonObject::add(std::string_view k, std::string_view value) {
  key(k);
  append_json_string(m_body, value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, long long value) {
  key(k);
  m_body += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    m_body += "null";
    return *this;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  m_body += buf;
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, bool value) {
  key(k);
  m_body += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::add_raw(std::string_view k, std::string_view json) {
  key(k);
  m_body += json;
  return *this;
}

} // namespace lethe::util
