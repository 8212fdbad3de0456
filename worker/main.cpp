// lethe's entry point: parse, load the configuration, dispatch to one command, and turn any
// fatal error into its message, a HINT line and a sysexits code.
#include "jobs/archive/archive.hpp"
#include "jobs/audit/audit.hpp"
#include "jobs/check/check.hpp"
#include "jobs/config/config.hpp"
#include "jobs/crypt/crypt.hpp"
#include "jobs/migrate/migrate.hpp"
#include "jobs/purge/purge.hpp"
#include "worker/cli/args.hpp"
#include "worker/db/migrations.hpp"
#include "worker/db/session.hpp"
#include "worker/log/log.hpp"
#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <cstdio>
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

long parse_positive(const std::string& v, const std::string& option) {
  try {
    size_t used = 0;
    long n = std::stol(v, &used);
    if (used == v.size() && n > 0) {
      return n;
    }
  } catch (const std::exception&) {
  }
  throw Error(Exit::usage, option + " must be a positive whole number",
              "write e.g. " + option + " 100");
}

int dispatch(const cli::Parsed& p) {
  const std::string cmd(p.command->name);
  if (cmd == "version") {
    std::cout << "lethe " << LETHE_VERSION << " (schema version " << db::known_schema_version()
              << ")\n";
    return 0;
  }
  if (cmd == "encrypt") {
    jobs::crypt::EncryptOptions o;
    o.recipients = p.all("recipient");
    o.key_namespace = p.value("key-namespace");
    o.key_name = p.value("key-name");
    o.context = p.all("context");
    if (p.flag("frame-length")) {
      o.frame_length =
          static_cast<std::uint32_t>(parse_positive(p.value("frame-length"), "--frame-length"));
    }
    o.in = p.value("in");
    o.out = p.value("out");
    return jobs::crypt::run_encrypt(o);
  }
  if (cmd == "decrypt") {
    return jobs::crypt::run_decrypt({p.value("private-key"), p.value("key-namespace"),
                                     p.value("key-name"), p.all("context"), p.value("in"),
                                     p.value("out")});
  }
  if (cmd == "keygen") {
    return jobs::crypt::run_keygen(p.value("out-private"), p.value("out-public"));
  }
  if (cmd == "config keys") {
    return jobs::config::run_config_keys(p.flag("json"));
  }
  settings::Settings s = settings::load(settings::resolve_path(p.value("config")));
  if (cmd == "config check" && p.flag("offline")) {
    db::validate_dsn(s.database);
    jobs::config::check_files(s);
    std::cout << "configuration " << s.source.string() << " is valid (not checked against a "
              << "database)\n";
    return 0;
  }
  if (cmd == "grants") {
    return jobs::config::run_grants(s);
  }
  Context ctx(std::move(s), util::current_identity(p.value("operator")), cmd);
  if (cmd == "migrate") {
    return jobs::migrate::run_migrate(ctx);
  }
  if (cmd == "purge") {
    jobs::purge::PurgeOptions o;
    o.as_of = p.value("as-of");
    o.dry_run = p.flag("dry-run");
    o.json = p.flag("json");
    o.force = p.flag("force");
    o.batch_size = p.flag("batch-size") ? parse_positive(p.value("batch-size"), "--batch-size") : 0;
    o.workers =
        p.flag("workers") ? static_cast<int>(parse_positive(p.value("workers"), "--workers")) : 0;
    return jobs::purge::run_purge(ctx, o);
  }
  if (cmd == "check") {
    return jobs::check::run_check(ctx, {p.value("as-of"), p.flag("json")});
  }
  if (cmd == "config check") {
    return jobs::config::run_config_check(ctx);
  }
  if (cmd == "archive run") {
    return jobs::archive::run_archive(ctx, {p.value("as-of"), p.flag("json")});
  }
  if (cmd == "archive verify") {
    jobs::archive::VerifyOptions o;
    o.read_data = p.flag("read-data");
    o.private_key = p.value("private-key");
    o.max_duration_s =
        p.flag("max-duration") ? parse_positive(p.value("max-duration"), "--max-duration") : 0;
    if (p.flag("subset")) {
      std::string v = p.value("subset");
      int k = 0;
      int n = 0;
      char extra = 0;
      if (std::sscanf(v.c_str(), "%d/%d%c", &k, &n, &extra) != 2 || n < 1 || k < 1 || k > n) {
        throw Error(Exit::usage, "--subset takes K/N with 1 <= K <= N", "e.g. --subset 3/7");
      }
      o.subset_index = k;
      o.subset_count = n;
    }
    o.json = p.flag("json");
    return jobs::archive::run_verify(ctx, o);
  }
  if (cmd == "archive restore" || cmd == "archive mark-cold" || cmd == "archive mark-destroyed") {
    if (p.positionals.size() != 1) {
      throw Error(Exit::usage, "`lethe " + cmd + "` takes one archive id",
                  "see `lethe archive list`");
    }
    if (cmd == "archive mark-cold") {
      return jobs::archive::run_mark(ctx, p.positionals[0], "cold");
    }
    if (cmd == "archive mark-destroyed") {
      return jobs::archive::run_mark(ctx, p.positionals[0], "destroyed");
    }
    return jobs::archive::run_restore(ctx,
                                      {p.positionals[0], p.value("private-key"), p.value("reason"),
                                       p.value("into"), p.value("into-db")});
  }
  if (cmd == "archive list") {
    return jobs::archive::run_list(ctx, p.flag("json"));
  }
  if (cmd == "archive expire") {
    return jobs::archive::run_expire(ctx, p.value("as-of"));
  }
  if (cmd == "audit verify") {
    return jobs::audit::run_verify(ctx, p.flag("json"));
  }
  if (cmd == "audit reanchor") {
    return jobs::audit::run_reanchor(ctx, p.value("operator"), p.value("reason"));
  }
  if (cmd == "audit show") {
    return jobs::audit::run_show(ctx, parse_positive(p.value("limit", "50"), "--limit"),
                                 p.value("job"), p.flag("json"));
  }
  throw Error(Exit::internal, "command '" + cmd + "' has no handler");
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
    return dispatch(p);
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
