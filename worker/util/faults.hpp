// Crash points for tests: when $LETHE_CRASH_AT names `point`, the process ends at once with
// _exit(99), as a kill -9 would end it (no destructors, no cleanup); when $LETHE_TERM_AT names
// it, the process sends itself SIGTERM there; when $LETHE_THROW_AT names it, a
// std::runtime_error (not a lethe::Error: an unexpected failure) is thrown there. Unset, it does
// nothing.
#pragma once

namespace lethe::util {

void crash_point(const char* point);

} // namespace lethe::util
