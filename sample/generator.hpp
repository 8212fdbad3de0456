// A deterministic generator of SP-API-like orders for the demo, tests and benchmarks: the same
// seed and options always give the same rows.
#pragma once

#include "worker/db/session.hpp"

#include <cstdint>
#include <string>

namespace lethe::sample {

struct Options {
  long orders = 1000;
  std::uint64_t seed = 42;
  long long from_epoch = 0; // purchase dates are spread uniformly over [from, to)
  long long to_epoch = 0;
  long first_index = 0; // order numbers start here (lets a caller add more orders later)
};

struct Counts {
  size_t orders = 0;
  size_t addresses = 0;
  size_t tax_infos = 0;
  size_t tax_classifications = 0;
  size_t items = 0;
};

// Seconds since the epoch of an ISO date "YYYY-MM-DD" (UTC); throws Error(usage) otherwise.
long long parse_date(const std::string& date);

// Creates the sample schema (dropping any earlier one) from `schema_sql`.
void create_schema(db::Session& session, const std::string& schema_sql);

// Generates `opt.orders` orders with their child rows and COPYs them in one transaction.
Counts load(db::Session& session, const Options& opt);

// Deterministic 64-bit generator (splitmix64).
class Rng {
public:
  explicit Rng(std::uint64_t seed) : m_state(seed) {}
  std::uint64_t next();
  // Uniform in [0, n).
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

private:
  std::uint64_t m_state;
};

} // namespace lethe::sample
