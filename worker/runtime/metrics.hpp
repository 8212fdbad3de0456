// Prometheus metrics (C15) for node_exporter's textfile collector: every run rewrites
// `lethe.prom` from lethe's own state (lethe.metrics(), schema 10, which any lethe role may call),
// and `lethe check` writes `lethe-check.prom` with the PII past its deadline, which only a role
// that reads the state views can count. Each file is written under a temporary name and renamed
// (the collector reads only `*.prom`), mode 0644. Every family is declared once in metrics.cpp
// with its type and help; names follow Prometheus' conventions (base units, `_total` only on
// counters). Deadlines are timestamps, not hours left: a file written hourly would show a stale
// count-down, and an alert rule subtracts time() itself.
#pragma once

#include "worker/runtime/context.hpp"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace lethe::runtime {

struct Sample {
  std::string family; // a name declared in metrics.cpp
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

// The exposition text of `samples`: each family's HELP and TYPE once, its samples below, families
// in declaration order. Throws Error(internal) for a family that is not declared.
std::string exposition(const std::vector<Sample>& samples);

// Every family's name and type ("gauge" or "counter"), in declaration order.
std::vector<std::pair<std::string, std::string>> families();

// The samples of lethe.metrics() on `session`.
std::vector<Sample> state_samples(db::Session& session);

// Writes `text` to `dir`/`file` atomically, mode 0644.
void write_textfile(const std::filesystem::path& dir, const std::string& file,
                    const std::string& text);

// Rewrites lethe.prom when metrics.textfile_dir is set and the context has a usable session.
// Never throws: a failure is a warning (metrics.not_written), never the run's outcome.
void write_state_metrics(Context& ctx) noexcept;

} // namespace lethe::runtime
