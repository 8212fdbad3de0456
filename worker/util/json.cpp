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

} // namespace lethe::util
