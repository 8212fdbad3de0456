// Step timing: a command's named steps and their wall-clock seconds, for the debug log, the
// `--json` output and (later) metrics. Like mold's `Timer t(ctx, "copy")`.
#pragma once

#include "worker/util/json.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace lethe::runtime {

// The seconds each named step took, in the order the steps first ran; a step timed twice adds up.
class Timings {
public:
  void add(const std::string& step, double seconds);
  const std::vector<std::pair<std::string, double>>& steps() const noexcept { return m_steps; }
  // {"plan": 0.012, "batches": 1.5, …}: seconds, to the millisecond.
  util::Json to_json() const;

private:
  std::vector<std::pair<std::string, double>> m_steps;
};

// Times one step from construction to stop() or destruction, whichever comes first, into
// `timings`, and logs event=step.done (debug) with its milliseconds. A step that ends by an
// exception is timed too.
class Timer {
public:
  Timer(Timings& timings, std::string step);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Ends the step (once); returns its seconds.
  double stop();

private:
  Timings& m_timings;
  std::string m_step;
  std::chrono::steady_clock::time_point m_start;
  double m_seconds = -1;
};

} // namespace lethe::runtime
