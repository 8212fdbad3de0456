// The one table of commands: name, help, typed options, what the command needs and its handler.
// main parses, looks the command up here and runs it (see run_command).
//
// To add a command: one CommandSpec in commands.cpp with its options (opt::flag, opt::text,
// opt::integer, …), its Needs and a reader that reads those options through Args into a Run.
// The help texts come from the same entry; the unit tests check that every command has a
// reader and that it reads only (and all) the options it declares.
#pragma once

#include "worker/cli/args.hpp"
#include "worker/runtime/context.hpp"
#include "worker/settings/settings.hpp"

#include <functional>
#include <memory>
#include <optional>

namespace lethe::cli {

// What a command needs before its options are read and it runs.
enum class Needs {
  nothing,  // runs without a configuration (crypto tools, version, config keys)
  config,   // the configuration is loaded first
  database, // and a Context (audit trail, database session on first use) is made
};

// What a command's run uses: the configuration and the Context, each made on first use.
class Env {
public:
  Env(const Args& a) : m_args(a) {}
  const settings::Settings& settings();
  Context& context();

private:
  const Args& m_args;
  std::optional<settings::Settings> m_settings;
  std::unique_ptr<Context> m_ctx;
};

// A command ready to run: its options already read and checked.
using Run = std::function<int(Env&)>;
// Reads a command's options (usage errors here) and returns what runs it; no side effects.
using Reader = Run (*)(const Args&);

struct CommandSpec {
  std::string_view name; // "migrate", "config check", …
  std::string_view positionals;
  std::string_view summary;
  std::string_view description;
  std::vector<OptionSpec> options;
  Needs needs = Needs::database;
  Reader read = nullptr;
};

// Runs the parsed command: loads what it needs, reads its options, runs its handler.
int run_command(const Parsed& p);

} // namespace lethe::cli
