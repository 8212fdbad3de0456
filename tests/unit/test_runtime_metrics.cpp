// The metrics file's text: every family declared once with a type and help, Prometheus' naming
// conventions, label values escaped, an undeclared family refused.
#include "worker/runtime/metrics.hpp"

#include <catch2/catch.hpp>
#include <regex>
#include <set>

using namespace lethe;

TEST_CASE("metrics: families follow Prometheus' naming conventions, each declared once") {
  std::set<std::string> seen;
  const std::regex name("lethe_[a-z0-9_]+");
  for (const auto& [family, type] : runtime::families()) {
    INFO(family);
    CHECK(seen.insert(family).second);
    CHECK(std::regex_match(family, name));
    CHECK((type == "gauge" || type == "counter"));
    bool total = family.size() > 6 && family.compare(family.size() - 6, 6, "_total") == 0;
    CHECK(total == (type == "counter"));
    // Base units only: seconds and bytes, never hours, days or milliseconds.
    for (const char* unit : {"_hours", "_days", "_ms", "_milliseconds", "_minutes", "_kb"}) {
      CHECK(family.find(unit) == std::string::npos);
    }
  }
  CHECK(seen.size() >= 30);
}

TEST_CASE("metrics: exposition groups samples under one HELP and TYPE, escapes label values") {
  std::vector<runtime::Sample> in{
      {"lethe_job_runs_total", {{"lethe_job", "purge"}, {"outcome", "done"}}, 3},
      {"lethe_incidents_open", {}, 0},
      {"lethe_job_runs_total", {{"lethe_job", "a \"quoted\\ job\"\n"}, {"outcome", "failed"}}, 1},
      {"lethe_drill_last_rto_seconds", {}, 12.5},
  };
  std::string text = runtime::exposition(in);
  CHECK(text ==
        "# HELP lethe_job_runs_total Finished runs of the job, by outcome.\n"
        "# TYPE lethe_job_runs_total counter\n"
        "lethe_job_runs_total{lethe_job=\"purge\",outcome=\"done\"} 3\n"
        "lethe_job_runs_total{lethe_job=\"a \\\"quoted\\\\ job\\\"\\n\",outcome=\"failed\"} 1\n"
        "# HELP lethe_drill_last_rto_seconds Recovery time of the last successful restore drill.\n"
        "# TYPE lethe_drill_last_rto_seconds gauge\n"
        "lethe_drill_last_rto_seconds 12.5\n"
        "# HELP lethe_incidents_open Incidents not closed.\n"
        "# TYPE lethe_incidents_open gauge\n"
        "lethe_incidents_open 0\n");
  CHECK_THROWS_AS(runtime::exposition({{"lethe_not_declared", {}, 1}}), Error);
  CHECK(runtime::exposition({}).empty());
}
