#pragma once

#include "worker/runtime/context.hpp"

namespace lethe::jobs::config {

// `lethe config check`: checks the PII map against the live catalog; a mismatch is refused
// (Error config) and recorded as an audit refusal. Returns the exit code.
int run_config_check(Context& ctx);

// `lethe config keys`: prints the key table (text or JSON lines).
int run_config_keys(bool json);

// `lethe grants`: prints the least-privilege SQL for the PII map.
int run_grants(const settings::Settings& s);

} // namespace lethe::jobs::config
