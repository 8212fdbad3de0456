// The purge's output: the --dry-run plan and the closing statistics, as text or JSON.
#pragma once

#include "worker/runtime/timer.hpp"
#include "worker/sanitize/stats.hpp"
#include "worker/settings/settings.hpp"

namespace lethe::jobs::purge {

// --dry-run output: per table, how many rows and which columns would be sanitized.
void print_plan(const sanitize::Stats& st, const settings::Settings& s, bool json);

// The closing statistics of a run.
void print_stats(const sanitize::Stats& st, const runtime::Timings& steps, bool json);

} // namespace lethe::jobs::purge
