#include "worker/util/faults.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace lethe::util {

void crash_point(const char* point) {
  const char* at = std::getenv("LETHE_CRASH_AT");
  if (at != nullptr && std::strcmp(at, point) == 0) {
    ::_exit(99);
  }
  // $LETHE_TERM_AT: a SIGTERM arrives at `point`, as systemd's stop would (tests only).
  const char* term = std::getenv("LETHE_TERM_AT");
  if (term != nullptr && std::strcmp(term, point) == 0) {
    ::raise(SIGTERM);
  }
}

} // namespace lethe::util
