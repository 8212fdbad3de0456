#include "worker/cli/args.hpp"
#include "worker/cli/commands.hpp"
#include "worker/util/error.hpp"

#include <catch2/catch.hpp>
#include <set>

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
  CHECK(usage_error({"--bogus"}) == Exit::usage); // not the top-level help
  CHECK(usage_error({"--json"}) == Exit::usage);  // a command's option without the command
}

TEST_CASE("parse: no command or --help asks for help, --version is the version command") {
  CHECK(cli::parse({}).help);
  CHECK(cli::parse({"--config", "/x.toml"}).help);
  cli::Parsed v = cli::parse({"--version"});
  REQUIRE(v.command != nullptr);
  CHECK(v.command->name == "version");
  CHECK_FALSE(v.help);
  cli::Parsed w = cli::parse({"--config", "/x.toml", "--version"});
  REQUIRE(w.command != nullptr);
  CHECK(w.command->name == "version");
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

namespace {

// A command line that gives `c` every option it declares, with a valid value of its type.
std::vector<std::string> all_options(const cli::CommandSpec& c) {
  std::vector<std::string> args;
  for (size_t i = 0, n = 0; i <= c.name.size(); ++i) {
    if (i == c.name.size() || c.name[i] == ' ') {
      args.emplace_back(c.name.substr(n, i - n));
      n = i + 1;
    }
  }
  if (!c.positionals.empty()) {
    args.emplace_back(c.positionals == "ID" ? "7" : "some-id"); // a request id is a number
  }
  for (const cli::OptionSpec& o : c.options) {
    args.push_back("--" + std::string(o.name));
    if (o.type == cli::OptType::integer) {
      args.push_back(std::to_string(o.min));
    } else if (o.value_name == "K/N") {
      args.emplace_back("1/7");
    } else if (o.type != cli::OptType::flag) {
      args.emplace_back("x");
    }
  }
  return args;
}

} // namespace

TEST_CASE("commands: every command has a handler that reads exactly the options it declares") {
  for (const cli::CommandSpec& c : cli::commands()) {
    INFO(c.name);
    REQUIRE(c.read != nullptr);
    cli::Parsed p = cli::parse(all_options(c));
    REQUIRE(p.command == &c);
    cli::Args args(p);
    std::set<std::string> read;
    args.record = &read;
    // An option read but not declared (or read as another type) throws Error(internal) here.
    cli::Run run;
    CHECK_NOTHROW(run = c.read(args));
    CHECK(run);
    // And an option declared but never read is dead help text.
    for (const cli::OptionSpec& o : c.options) {
      INFO(o.name);
      CHECK(read.contains(std::string(o.name)));
    }
  }
}

TEST_CASE("Args: an undeclared option or the wrong type is a bug caught at the first read") {
  cli::Parsed p = cli::parse({"check", "--json"});
  cli::Args args(p);
  CHECK(args.flag("json"));
  CHECK(args.text("config").empty()); // global options are declared for every command
  try {
    (void)args.text("limit");
    FAIL("an undeclared option was read");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::internal);
    CHECK(std::string(e.what()).find("--limit that it does not declare") != std::string::npos);
  }
  CHECK_THROWS_AS(args.text("json"), Error); // a flag read as text
}

TEST_CASE("Args: integers are checked against their range with the old messages") {
  cli::Parsed p = cli::parse({"purge", "--batch-size", "0", "--workers=3"});
  cli::Args args(p);
  CHECK(args.integer("workers") == 3);
  try {
    (void)args.integer("batch-size");
    FAIL("0 accepted");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::usage);
    CHECK(std::string(e.what()) == "--batch-size must be a positive whole number");
    CHECK(e.hint() == "write e.g. --batch-size 100");
  }
  cli::Parsed q = cli::parse({"audit", "show"});
  CHECK_FALSE(cli::Args(q).integer("limit").has_value());
}
