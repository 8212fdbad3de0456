#include "worker/util/faults.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
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
  const char* fail = std::getenv("LETHE_THROW_AT");
  if (fail != nullptr && std::strcmp(fail, point) == 0) {
    throw std::runtime_error(std::string("injected failure at ") + point);
  }
}

} // namespace lethe::util
