#pragma once

#include "worker/runtime/context.hpp"

namespace lethe::jobs::config {

// `lethe config check`: checks the PII map against the live catalog; a mismatch is refused
// (Error config) and recorded as an audit refusal. Returns the exit code.
int run_config_check(Context& ctx);

// `lethe config approve`: records the catalog facts of the PII map's reach as the approved
// schema, in an audit record naming the operator and the reason (worker/db/drift.hpp). Refuses
// while a column of a mapped table can hold PII and the map does not mention it.
int run_config_approve(Context& ctx, const std::string& operator_name, const std::string& reason);

// `lethe config discover`: every text-like column of the database rated as a PII candidate by
// name and type, with what the map says of it; with `sample_rows` > 0, counts of sampled values
// that look like emails, phone numbers, IBANs or street addresses, and the candidate keys of
// JSON documents. Names and counts only, never a value.
int run_config_discover(Context& ctx, long sample_rows, bool json);

// Checks the files the configuration names for later runs (each archive.recipients public key
// exists and is a PEM public key): throws Error(config) naming the key, the file and where the
// configuration names it. Part of `config check`, with or without --offline.
void check_files(const settings::Settings& s);

// `lethe config keys`: prints the key table (text or JSON lines).
int run_config_keys(bool json);

// `lethe grants`: prints the least-privilege SQL for the PII map.
int run_grants(const settings::Settings& s);

} // namespace lethe::jobs::config
