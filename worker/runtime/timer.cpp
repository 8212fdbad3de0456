#include "worker/runtime/timer.hpp"

#include "worker/log/log.hpp"

#include <cmath>

namespace lethe::runtime {

void Timings::add(const std::string& step, double seconds) {
  for (auto& [name, total] : m_steps) {
    if (name == step) {
      total += seconds;
      return;
    }
  }
  m_steps.emplace_back(step, seconds);
}

util::Json Timings::to_json() const {
  util::Json out = util::Json::object();
  for (const auto& [name, seconds] : m_steps) {
    out[name] = std::round(seconds * 1000) / 1000;
  }
  return out;
}

Timer::Timer(Timings& timings, std::string step)
    : m_timings(timings), m_step(std::move(step)), m_start(std::chrono::steady_clock::now()) {}

Timer::~Timer() {
  try {
    stop();
  } catch (...) {
    // timing is never worth a failure of its own
  }
}

double Timer::stop() {
  if (m_seconds < 0) {
    m_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
    m_timings.add(m_step, m_seconds);
    log::event(log::Level::debug, "step.done",
               {{"step", m_step}, {"ms", static_cast<long>(m_seconds * 1000)}});
  }
  return m_seconds;
}

} // namespace lethe::runtime
