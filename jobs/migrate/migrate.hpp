#pragma once

#include "worker/runtime/context.hpp"

namespace lethe::jobs::migrate {

// `lethe migrate`: brings lethe's schema up to date and records the run. Returns the exit code.
int run_migrate(Context& ctx);

} // namespace lethe::jobs::migrate
