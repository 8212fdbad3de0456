#pragma once

#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::jobs::check {

struct CheckOptions {
  std::string as_of; // empty: the database's now()
  bool json = false;
};

// `lethe check`: prints the counts; returns 0 when nothing is overdue, 1 otherwise.
int run_check(Context& ctx, const CheckOptions& opts);

} // namespace lethe::jobs::check
