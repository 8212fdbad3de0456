// Two pieces of work at once, for jobs that keep a second database connection busy.
#pragma once

#include <functional>

namespace lethe::util {

// Runs `here` on this thread while `there` (when given) runs on a second one; waits for both,
// then rethrows this thread's failure, else the other's.
void in_parallel(const std::function<void()>& here, const std::function<void()>& there);

} // namespace lethe::util
