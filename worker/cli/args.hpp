// Command-line parsing, typed option access and the help texts: one table of commands
// (worker/cli/commands.cpp) with their typed options, what each needs and its handler, so
// `lethe --help`, `lethe <command> --help`, the parser and the handlers all read the same specs.
#pragma once

#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::cli {

enum class OptType { flag, text, path, integer, repeated };

struct OptionSpec {
  std::string_view name;       // without the leading "--"
  std::string_view value_name; // empty for a flag
  std::string_view help;
  OptType type = OptType::flag;
  long min = 1; // integer: allowed range
  long max = std::numeric_limits<long>::max();
};

// Option constructors, so a spec says what its value is.
namespace opt {
constexpr OptionSpec flag(std::string_view name, std::string_view help) {
  return {name, "", help, OptType::flag};
}
constexpr OptionSpec text(std::string_view name, std::string_view value_name,
                          std::string_view help) {
  return {name, value_name, help, OptType::text};
}
constexpr OptionSpec path(std::string_view name, std::string_view value_name,
                          std::string_view help) {
  return {name, value_name, help, OptType::path};
}
// A whole number in [min, max] (default: positive).
constexpr OptionSpec integer(std::string_view name, std::string_view value_name,
                             std::string_view help, long min = 1,
                             long max = std::numeric_limits<long>::max()) {
  return {name, value_name, help, OptType::integer, min, max};
}
// A text option that may be given several times; read with Args::all.
constexpr OptionSpec repeated(std::string_view name, std::string_view value_name,
                              std::string_view help) {
  return {name, value_name, help, OptType::repeated};
}
} // namespace opt

struct CommandSpec;

struct Parsed {
  const CommandSpec* command = nullptr;                   // nullptr with help: top-level help
  std::map<std::string, std::vector<std::string>> values; // an option may repeat
  std::vector<std::string> positionals;
  bool help = false;

  bool flag(const std::string& name) const { return values.contains(name); }
  // The option's last value, or `dflt`.
  std::string value(const std::string& name, std::string dflt = {}) const {
    auto it = values.find(name);
    return it == values.end() || it->second.empty() ? dflt : it->second.back();
  }
};

// Typed access to a parsed command line. Every getter checks that the command (or the global
// options) declares the name with that type, and throws Error(internal) otherwise, so a handler
// reading an option its spec lacks fails the unit test that runs every reader.
class Args {
public:
  explicit Args(const Parsed& p) : m_p(p) {}

  const CommandSpec& command() const { return *m_p.command; }
  const std::vector<std::string>& positionals() const { return m_p.positionals; }

  bool flag(std::string_view name) const;
  // A text or path option's last value, or `dflt`.
  std::string text(std::string_view name, std::string dflt = {}) const;
  // An integer option, checked against its range (Error(usage) outside it), or nullopt.
  std::optional<long> integer(std::string_view name) const;
  // Every value of a repeated option, in order.
  std::vector<std::string> all(std::string_view name) const;

  // When set, the names read are added here (tests: every declared option is read).
  std::set<std::string>* record = nullptr;

private:
  const OptionSpec& declared(std::string_view name, std::initializer_list<OptType> types) const;
  const Parsed& m_p;
};

// All commands.
const std::vector<CommandSpec>& commands();

// Options every command takes.
const std::vector<OptionSpec>& global_options();

// Parses `args` (without argv[0]); throws Error(usage) with a hint on anything it does not know.
Parsed parse(const std::vector<std::string>& args);

std::string top_help();
std::string command_help(const CommandSpec& c);

} // namespace lethe::cli
