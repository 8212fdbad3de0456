#pragma once

#include "worker/runtime/context.hpp"

namespace lethe::jobs::config {

// `lethe config check`: checks the PII map against the live catalog; a mismatch is refused
// (Error config) and recorded as an audit refusal. Returns the exit code.
int run_config_check(Context& ctx);

// Checks the files the configuration names for later runs (each archive.recipients public key
// exists and is a PEM public key): throws Error(config) naming the key, the file and where the
// configuration names it. Part of `config check`, with or without --offline.
void check_files(const settings::Settings& s);

// `lethe config keys`: prints the key table (text or JSON lines).
int run_config_keys(bool json);

// `lethe grants`: prints the least-privilege SQL for the PII map.
int run_grants(const settings::Settings& s);

} // namespace lethe::jobs::config
