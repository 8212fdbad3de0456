// lethe's entry point: parse, look the command up in the table (worker/cli/commands.cpp) and run
// it, and turn any fatal error into its message, a HINT line and a sysexits code.
#include "worker/cli/args.hpp"
#include "worker/cli/commands.hpp"
#include "worker/log/log.hpp"
#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <iostream>
#include <sstream>

namespace {

using namespace lethe;

void print_fatal(const Error& e) {
  std::istringstream lines(e.what());
  std::string line;
  bool first = true;
  while (std::getline(lines, line)) {
    std::string text = first ? "lethe: error: " + line : line;
    if (first && !e.where().empty()) {
      text += " [" + e.where() + "]";
    }
    log::line(log::Level::error, text);
    first = false;
  }
  if (!e.hint().empty()) {
    log::line(log::Level::error, "HINT: " + e.hint());
  }
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    cli::Parsed p = cli::parse(args);
    if (p.help) {
      std::cout << (p.command != nullptr ? cli::command_help(*p.command) : cli::top_help());
      return 0;
    }
    if (p.flag("verbose")) {
      log::set_max_level(log::Level::debug);
    }
    return cli::run_command(p);
  } catch (const Error& e) {
    print_fatal(e);
    return static_cast<int>(e.code());
  } catch (const std::filesystem::filesystem_error& e) {
    // A backstop: file system failures are the environment's, not a bug in lethe.
    Error err = util::filesystem_error("cannot use", e.path1(), e.code());
    print_fatal(err);
    return static_cast<int>(err.code());
  } catch (const std::exception& e) {
    print_fatal(Error(Exit::internal, std::string("unexpected failure: ") + e.what(),
                      "this is a bug in lethe; the run changed nothing it did not commit"));
    return static_cast<int>(Exit::internal);
  }
}
