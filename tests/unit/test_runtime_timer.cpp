// Step timings: named steps in the order they first ran, a repeated step adding up, a step that
// ends by an exception still timed.
#include "worker/runtime/timer.hpp"

#include <catch2/catch.hpp>
#include <stdexcept>

using namespace lethe;

TEST_CASE("timer: steps are kept in the order they ran and a repeated step adds up") {
  runtime::Timings t;
  t.add("plan", 0.25);
  t.add("batches", 1.5);
  t.add("plan", 0.5);
  REQUIRE(t.steps().size() == 2);
  CHECK(t.steps()[0].first == "plan");
  CHECK(t.steps()[0].second == Approx(0.75));
  CHECK(t.steps()[1].first == "batches");
  CHECK(t.to_json().dump() == "{\"plan\":0.75,\"batches\":1.5}");
}

TEST_CASE("timer: a Timer records its step once, on stop or when it goes out of scope") {
  runtime::Timings t;
  {
    runtime::Timer a(t, "copy");
    double first = a.stop();
    CHECK(first >= 0);
    CHECK(a.stop() == first); // a second stop changes nothing
  }
  REQUIRE(t.steps().size() == 1);
  try {
    runtime::Timer b(t, "vacuum");
    throw std::runtime_error("fails");
  } catch (const std::runtime_error&) {
  }
  REQUIRE(t.steps().size() == 2);
  CHECK(t.steps()[1].first == "vacuum");
  CHECK(t.steps()[1].second >= 0);
}
