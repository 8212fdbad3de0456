#include "worker/cli/args.hpp"
#include "worker/util/error.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

namespace {

Exit usage_error(const std::vector<std::string>& args) {
  try {
    cli::parse(args);
  } catch (const Error& e) {
    CHECK_FALSE(e.hint().empty());
    return e.code();
  }
  return Exit::ok;
}

} // namespace

TEST_CASE("parse: two-word commands, options before and after, values") {
  cli::Parsed p = cli::parse({"--config", "/x.toml", "audit", "show", "--limit", "5", "--json"});
  REQUIRE(p.command != nullptr);
  CHECK(p.command->name == "audit show");
  CHECK(p.value("config") == "/x.toml");
  CHECK(p.value("limit") == "5");
  CHECK(p.flag("json"));
  CHECK_FALSE(p.flag("verbose"));
  cli::Parsed q = cli::parse({"check", "--as-of=2026-01-01"});
  CHECK(q.command->name == "check");
  CHECK(q.value("as-of") == "2026-01-01");
}

TEST_CASE("parse: mistakes are usage errors (64) with a hint") {
  CHECK(usage_error({"frobnicate"}) == Exit::usage);
  CHECK(usage_error({"migrate", "--json"}) == Exit::usage);   // not an option of migrate
  CHECK(usage_error({"check", "--as-of"}) == Exit::usage);    // value missing
  CHECK(usage_error({"check", "--json=yes"}) == Exit::usage); // flag with a value
  CHECK(usage_error({"migrate", "extra"}) == Exit::usage);    // stray argument
  CHECK(usage_error({"-x", "migrate"}) == Exit::usage);
}

TEST_CASE("parse: no command or --help asks for help") {
  CHECK(cli::parse({}).help);
  cli::Parsed p = cli::parse({"migrate", "--help"});
  CHECK(p.help);
  CHECK(p.command->name == "migrate");
}

TEST_CASE("help: lists every command and every option it accepts") {
  std::string top = cli::top_help();
  for (const cli::CommandSpec& c : cli::commands()) {
    CHECK(top.find("  " + std::string(c.name) + " ") != std::string::npos);
    std::string help = cli::command_help(c);
    for (const cli::OptionSpec& o : c.options) {
      CHECK(help.find("--" + std::string(o.name)) != std::string::npos);
    }
    for (const cli::OptionSpec& o : cli::global_options()) {
      CHECK(help.find("--" + std::string(o.name)) != std::string::npos);
    }
  }
  CHECK(top.find("78 configuration") != std::string::npos);
}
