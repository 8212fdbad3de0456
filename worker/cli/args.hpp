// Command-line parsing and the help texts: one table of commands and their options, so
// `lethe --help` and `lethe <command> --help` always describe what the parser accepts.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::cli {

struct OptionSpec {
  std::string_view name;       // without the leading "--"
  std::string_view value_name; // empty for a flag
  std::string_view help;
};

struct CommandSpec {
  std::string_view name; // "migrate", "config check", …
  std::string_view positionals;
  std::string_view summary;
  std::string_view description;
  std::vector<OptionSpec> options;
  bool needs_config = true;
};

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
  // Every value the option was given, in order.
  std::vector<std::string> all(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
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
