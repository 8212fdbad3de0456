#include "worker/util/error.hpp"

namespace lethe {

const char* exit_name(Exit code) noexcept {
  switch (code) {
  case Exit::ok:
    return "ok";
  case Exit::failure:
    return "failure";
  case Exit::usage:
    return "usage";
  case Exit::data:
    return "data";
  case Exit::unavailable:
    return "unavailable";
  case Exit::internal:
    return "internal";
  case Exit::cant_create:
    return "cant_create";
  case Exit::io:
    return "io";
  case Exit::temporary:
    return "temporary";
  case Exit::permission:
    return "permission";
  case Exit::config:
    return "config";
  }
  return "unknown";
}

} // namespace lethe
