#include "worker/cli/args.hpp"

#include "worker/cli/commands.hpp"
#include "worker/util/error.hpp"

#include <algorithm>
#include <optional>

namespace lethe::cli {
namespace {

std::string pad(std::string_view s, size_t width) {
  std::string out(s);
  if (out.size() < width) {
    out.append(width - out.size(), ' ');
  } else {
    out += "  ";
  }
  return out;
}

std::string option_line(const OptionSpec& o) {
  std::string lhs = "  --" + std::string(o.name);
  if (!o.value_name.empty()) {
    lhs += " " + std::string(o.value_name);
  }
  return pad(lhs, 26) + std::string(o.help) + "\n";
}

const OptionSpec* find_option(const std::vector<OptionSpec>& opts, std::string_view name) {
  for (const OptionSpec& o : opts) {
    if (o.name == name) {
      return &o;
    }
  }
  return nullptr;
}

} // namespace

const std::vector<OptionSpec>& global_options() {
  static const std::vector<OptionSpec> k_opts{
      opt::path("config", "FILE",
                "configuration file (default $LETHE_CONFIG, else /etc/lethe/lethe.toml)"),
      opt::text("operator", "NAME",
                "who runs this, recorded in the audit trail (default: the OS user, or "
                "the systemd unit)"),
      opt::flag("verbose", "log debug events too"),
      opt::flag("help", "show help for the command"),
  };
  return k_opts;
}

namespace {

// Whether an option takes a value is a property of its name across all commands, so the
// words can be told from option values before the command is known.
bool takes_value(const std::string& name) {
  if (const OptionSpec* o = find_option(global_options(), name)) {
    return !o->value_name.empty();
  }
  for (const CommandSpec& c : commands()) {
    if (const OptionSpec* o = find_option(c.options, name)) {
      return !o->value_name.empty();
    }
  }
  return false;
}

using RawOptions = std::vector<std::pair<std::string, std::optional<std::string>>>;

// Splits `args` into words and options (values attached); sets p.help on -h/--help.
void split(const std::vector<std::string>& args, Parsed& p, std::vector<std::string>& words,
           RawOptions& opts) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      p.help = true;
    } else if (a.starts_with("--") && a.size() > 2) {
      std::string name = a.substr(2);
      std::optional<std::string> value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (takes_value(name)) {
        if (i + 1 >= args.size()) {
          throw Error(Exit::usage, "option --" + name + " needs a value",
                      "write --" + name + " VALUE; see `lethe --help`");
        }
        value = args[++i];
      }
      opts.emplace_back(name, value);
    } else if (a.starts_with("-") && a.size() > 1) {
      throw Error(Exit::usage, "unknown option " + a, "see `lethe --help`");
    } else {
      words.push_back(a);
    }
  }
}

size_t word_count(std::string_view name) {
  return static_cast<size_t>(std::count(name.begin(), name.end(), ' ')) + 1;
}

// The longest command name that the leading words spell, or nullptr.
const CommandSpec* find_command(const std::vector<std::string>& words) {
  const CommandSpec* found = nullptr;
  for (const CommandSpec& c : commands()) {
    size_t n = word_count(c.name);
    if (words.size() < n) {
      continue;
    }
    std::string joined;
    for (size_t i = 0; i < n; ++i) {
      joined += (i ? " " : "") + words[i];
    }
    if (joined == c.name && (found == nullptr || c.name.size() > found->name.size())) {
      found = &c;
    }
  }
  return found;
}

void add_option(Parsed& p, const std::string& name, const std::optional<std::string>& value) {
  std::string cmd(p.command->name);
  const OptionSpec* o = find_option(p.command->options, name);
  if (o == nullptr) {
    o = find_option(global_options(), name);
  }
  if (o == nullptr) {
    throw Error(Exit::usage, "unknown option --" + name + " for `lethe " + cmd + "`",
                "see `lethe " + cmd + " --help`");
  }
  if (o->value_name.empty() && value) {
    throw Error(Exit::usage, "option --" + name + " takes no value", "write just --" + name);
  }
  if (!o->value_name.empty() && (!value || value->empty())) {
    throw Error(Exit::usage, "option --" + name + " needs a value",
                "write --" + name + " " + std::string(o->value_name));
  }
  p.values[name].push_back(value.value_or(""));
}

} // namespace

Parsed parse(const std::vector<std::string>& args) {
  Parsed p;
  std::vector<std::string> words;
  RawOptions opts;
  split(args, p, words, opts);
  // `lethe --version` is `lethe version`, beside global options such as --config.
  auto version = std::find_if(opts.begin(), opts.end(),
                              [](const auto& o) { return o.first == "version" && !o.second; });
  if (words.empty() && !p.help && version != opts.end()) {
    words.push_back("version");
    opts.erase(version);
  }
  p.command = find_command(words);
  if (p.command == nullptr) {
    if (words.empty()) {
      // The top-level help, unless an option no command line may start with was given.
      for (const auto& [name, value] : opts) {
        if (find_option(global_options(), name) == nullptr) {
          throw Error(Exit::usage, "unknown option --" + name, "see `lethe --help`");
        }
      }
      p.help = true;
      return p;
    }
    throw Error(Exit::usage,
                "unknown command '" + words[0] + (words.size() > 1 ? " " + words[1] : "") + "'",
                "see `lethe --help` for the list of commands");
  }
  p.positionals.assign(words.begin() + static_cast<long>(word_count(p.command->name)), words.end());
  std::string cmd(p.command->name);
  if (!p.positionals.empty() && p.command->positionals.empty()) {
    throw Error(Exit::usage,
                "unexpected argument '" + p.positionals[0] + "' for `lethe " + cmd + "`",
                "see `lethe " + cmd + " --help`");
  }
  for (const auto& [name, value] : opts) {
    add_option(p, name, value);
  }
  return p;
}

const OptionSpec& Args::declared(std::string_view name,
                                 std::initializer_list<OptType> types) const {
  const OptionSpec* o = find_option(command().options, name);
  if (o == nullptr) {
    o = find_option(global_options(), name);
  }
  if (o == nullptr || std::find(types.begin(), types.end(), o->type) == types.end()) {
    throw Error(Exit::internal,
                "`lethe " + std::string(command().name) + "` reads option --" + std::string(name) +
                    (o == nullptr ? " that it does not declare" : " as another type"),
                "this is a bug in lethe: declare the option in worker/cli/commands.cpp");
  }
  if (record != nullptr) {
    record->insert(std::string(name));
  }
  return *o;
}

bool Args::flag(std::string_view name) const {
  declared(name, {OptType::flag});
  return m_p.values.contains(std::string(name));
}

std::string Args::text(std::string_view name, std::string dflt) const {
  declared(name, {OptType::text, OptType::path});
  return m_p.value(std::string(name), std::move(dflt));
}

std::vector<std::string> Args::all(std::string_view name) const {
  declared(name, {OptType::repeated});
  auto it = m_p.values.find(std::string(name));
  return it == m_p.values.end() ? std::vector<std::string>{} : it->second;
}

std::optional<long> Args::integer(std::string_view name) const {
  const OptionSpec& o = declared(name, {OptType::integer});
  std::string option = "--" + std::string(name);
  auto it = m_p.values.find(std::string(name));
  if (it == m_p.values.end() || it->second.empty()) {
    return std::nullopt;
  }
  const std::string& v = it->second.back();
  try {
    size_t used = 0;
    long n = std::stol(v, &used);
    if (used == v.size() && n >= o.min && n <= o.max) {
      return n;
    }
  } catch (const std::exception&) {
  }
  throw Error(Exit::usage,
              option + (o.min == 1 && o.max == std::numeric_limits<long>::max()
                            ? " must be a positive whole number"
                            : " must be a whole number from " + std::to_string(o.min) + " to " +
                                  std::to_string(o.max)),
              "write e.g. " + option + " 100");
}

std::string top_help() {
  std::string out =
      "lethe " LETHE_VERSION " — keeps a seller order database inside Amazon's Data Protection "
      "Policy\n\nUsage: lethe <command> [options]\n\nCommands:\n";
  for (const CommandSpec& c : commands()) {
    out += pad("  " + std::string(c.name), 26) + std::string(c.summary) + "\n";
  }
  out += "\nOptions for every command:\n";
  for (const OptionSpec& o : global_options()) {
    out += option_line(o);
  }
  out += "\nExit codes: 0 ok, 1 check found a violation, 64 usage, 65 bad data or safety limit,\n"
         "69 unavailable (server down, TLS refused), 70 internal, 73 cannot create, 74 I/O,\n"
         "75 temporary (lock held, retry later), 77 permission, 78 configuration.\n"
         "\n`lethe <command> --help` describes one command.\n";
  return out;
}

std::string command_help(const CommandSpec& c) {
  std::string out = "Usage: lethe " + std::string(c.name);
  if (!c.positionals.empty()) {
    out += " " + std::string(c.positionals);
  }
  out += " [options]\n\n" + std::string(c.summary) + ".\n";
  if (!c.description.empty()) {
    out += "\n" + std::string(c.description) + "\n";
  }
  if (!c.options.empty()) {
    out += "\nOptions:\n";
    for (const OptionSpec& o : c.options) {
      out += option_line(o);
    }
  }
  out += "\nOptions for every command:\n";
  for (const OptionSpec& o : global_options()) {
    out += option_line(o);
  }
  return out;
}

} // namespace lethe::cli
