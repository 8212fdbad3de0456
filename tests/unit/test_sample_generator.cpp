#include "sample/generator.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

TEST_CASE("Rng: the same seed gives the same sequence, another seed another") {
  sample::Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    std::uint64_t x = a.next();
    CHECK(x == b.next());
    CHECK(x != c.next());
  }
}

TEST_CASE("parse_date: ISO dates in UTC, anything else is a usage error") {
  CHECK(sample::parse_date("1970-01-02") == 86400);
  CHECK(sample::parse_date("2026-11-22") == 1795305600);
  CHECK_THROWS_AS(sample::parse_date("22/11/2026"), Error);
  CHECK_THROWS_AS(sample::parse_date("2026-13-01"), Error);
  CHECK_THROWS_AS(sample::parse_date("2026-11-22x"), Error);
}
