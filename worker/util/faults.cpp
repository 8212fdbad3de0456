#include "worker/util/faults.hpp"

#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace lethe::util {

void crash_point(const char* point) {
  const char* at = std::getenv("LETHE_CRASH_AT");
  if (at != nullptr && std::strcmp(at, point) == 0) {
    ::_exit(99);
  }
}

} // namespace lethe::util
