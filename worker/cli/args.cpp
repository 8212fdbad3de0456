#include "worker/cli/args.hpp"

#include "worker/util/error.hpp"

#include <algorithm>
#include <optional>

namespace lethe::cli {
namespace {

const OptionSpec k_json{"json", "", "print JSON instead of text"};
const OptionSpec k_as_of{
    "as-of", "TIMESTAMP",
    "evaluate retention clocks at this instant instead of the database's now()"};

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
      {"config", "FILE", "configuration file (default $LETHE_CONFIG, else /etc/lethe/lethe.toml)"},
      {"operator", "NAME",
       "who runs this, recorded in the audit trail (default: the OS user, or "
       "the systemd unit)"},
      {"verbose", "", "log debug events too"},
      {"help", "", "show help for the command"},
  };
  return k_opts;
}

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> k_commands{
      {"migrate",
       "",
       "create or upgrade lethe's own schema in the database",
       "Applies the numbered migrations this binary carries (each in one transaction, its version\n"
       "recorded in lethe.schema_version). Safe to run again. Refuses a schema newer than this\n"
       "binary knows. Run it as the database owner. Writes an audit record.",
       {}},
      {"purge",
       "",
       "remove buyer PII whose retention clock has run out (C1)",
       "Sanitizes every order due by the PII map's clocks (shipment + retention.days, or the\n"
       "never_shipped clocks) across the root and child tables, by each column's strategy, in\n"
       "small committed batches; held orders are skipped until archived. Refuses to run above\n"
       "the safety limits (exit 65) unless --force; a second purge exits 75. SIGTERM finishes\n"
       "the current batch and exits 75. Ends with VACUUM of the touched tables and statistics.",
       {k_as_of,
        {"dry-run", "", "change nothing; print per table what would be sanitized"},
        {"force", "", "run above the safety limits (recorded in the audit trail)"},
        {"batch-size", "N", "orders in the first batch (default purge.batch_size; adapts)"},
        {"workers", "N", "parallel connections (default purge.workers)"},
        k_json}},
      {"check",
       "",
       "report PII past its retention deadline (monitoring probe, C1)",
       "Counts, per PII-map table, rows that still hold PII after their deadline, and the age\n"
       "of the oldest; rows under regulatory hold are listed apart. Reads only lethe's state\n"
       "views, never a PII value. Exit 0 when nothing is overdue, 1 when something is.",
       {k_as_of, k_json}},
      {"config check",
       "",
       "validate the configuration against the live database catalog",
       "Loads the configuration (syntax, keys, types, PII-map shape), connects with verified\n"
       "TLS and checks every table and column of the PII map, key indexes, the hold predicate\n"
       "and lethe's state views. A mismatch is refused (exit 78) and recorded in the audit trail.",
       {{"offline", "", "check the file only; do not connect"}}},
      {"config keys",
       "",
       "list every configuration key with its type, default and meaning",
       "The one table of keys the loader accepts.",
       {k_json},
       false},
      {"grants",
       "",
       "print least-privilege SQL for lethe's roles, derived from the PII map",
       "Prints a script for the database owner: state views (which rows hold PII, when they\n"
       "fall due, no PII values) and one role per job with column-level grants (C11).",
       {}},
      {"audit verify",
       "",
       "check the audit trail's hash chain and anchor file",
       "Recomputes every record's SHA-256 link (version 2 covers the database role that\n"
       "inserted the record, stamped by the server) and compares the chain with the anchor\n"
       "file (audit.anchor_file): every line must read '<seq> <sha256>' and match its record,\n"
       "no line may name a record the table lacks, and a non-empty table needs a non-empty\n"
       "anchor (see `lethe audit reanchor`). An unterminated last line is a torn append,\n"
       "reported and cut off by the next append. Errors name the record and the anchor\n"
       "file's line. Exit 65 when broken.",
       {k_json}},
      {"audit reanchor",
       "",
       "start a new anchor file after it was lost or edited (audited: who and why)",
       "When the anchor file is absent, empty or holds lines that do not parse, appends a\n"
       "manual audit record naming --operator and --reason, keeps the old file as\n"
       "<anchor>.replaced-<seq> and starts a new anchor file at that record. Refused (exit 65)\n"
       "when the chain is broken or an anchor line disagrees with the table.",
       {{"reason", "TEXT", "why (required; recorded in the audit trail; never PII)"}}},
      {"audit show",
       "",
       "list audit records, oldest first",
       "Prints the newest records (text, or JSON lines with --json).",
       {{"limit", "N", "how many of the newest records (default 50)"},
        {"job", "NAME", "only records of this job"},
        k_json}},
      {"archive run",
       "",
       "archive held orders whose PII is due, then sanitize them (C2)",
       "Selects held orders (hold.predicate) whose PII is due, writes one encrypted archive\n"
       "(tar + zstd inside an AWS Encryption SDK message to archive.recipients' public keys)\n"
       "to archive.spool_dir: temporary name, fsync, rename, fsync directory, re-read and\n"
       "check; records it in the catalog, and only then sanitizes the archived orders.\n"
       "Files an earlier crashed run left unrecorded are discarded first, and said so.",
       {k_as_of, k_json}},
      {"archive verify",
       "",
       "check cataloged archives: present, length and SHA-256; with the key, their members",
       "Without a key: every cataloged archive in the spool (or marked cold) has the recorded\n"
       "length and SHA-256. With --read-data --private-key: decrypts each and checks every\n"
       "member's SHA-256 and row count against the manifest. Exit 65 when any fails.",
       {{"read-data", "", "decrypt and check every member (needs --private-key)"},
        {"private-key", "KEY", "the archive private key (owner-only file or credential name)"},
        {"max-duration", "SECONDS", "stop starting new archives after this long"},
        {"subset", "K/N", "only every N-th archive, starting with the K-th (a week: 1/7 … 7/7)"},
        k_json}},
      {"archive restore",
       "ARCHIVE",
       "write an archive's members out, or load them into a scratch schema (audited)",
       "For a legal or tax request: decrypts ARCHIVE with the offline private key and writes\n"
       "its members (mode 0600) under --into DIR, or creates --into-db SCHEMA with one table\n"
       "per archived table (recorded column types) and loads them. The audit record names the\n"
       "operator and the reason.",
       {{"private-key", "KEY", "the archive private key"},
        {"reason", "TEXT", "why (required; recorded in the audit trail; never PII)"},
        {"into", "DIR", "write the members under DIR"},
        {"into-db", "SCHEMA", "load into a new schema of this name"}}},
      {"archive list",
       "",
       "list cataloged archives",
       "One line (or JSON object) per archive.",
       {k_json}},
      {"archive expire",
       "",
       "destroy archives past their retention-until date (C6, C17)",
       "Overwrites and removes spooled archives past retention-until and marks them destroyed;\n"
       "an archive in cold storage is reported (and audited) for the operator to destroy there.",
       {k_as_of}},
      {"archive mark-cold",
       "ARCHIVE",
       "record that ARCHIVE was moved to cold storage",
       "Run by the cold-storage process after it took the file from the spool.",
       {}},
      {"archive mark-destroyed",
       "ARCHIVE",
       "record that ARCHIVE was destroyed in cold storage",
       "Run after destroying an expired archive held in cold storage.",
       {}},
      {"encrypt",
       "",
       "encrypt a stream into an AWS Encryption SDK message (suite 0x0478)",
       "Wraps a fresh data key with RSA-OAEP-SHA256 to each recipient's public key and writes a\n"
       "framed, key-committing message that the official AWS Encryption SDK decrypts (raw RSA\n"
       "keyring, the same namespace and name). Reads stdin and writes stdout unless told\n"
       "otherwise; --out appears only when the message is complete.",
       {{"recipient", "PUB.pem", "RSA public key (3072 or 4096 bits); repeat for more"},
        {"key-namespace", "NS", "raw RSA keyring namespace (provider id)"},
        {"key-name", "NAME", "raw RSA keyring key name (provider info)"},
        {"context", "K=V", "encryption context pair; repeat for more (never PII)"},
        {"frame-length", "N", "bytes of plaintext per frame (default 65536)"},
        {"in", "FILE", "read FILE instead of stdin"},
        {"out", "FILE", "write FILE (mode 0600) instead of stdout"}},
       false},
      {"decrypt",
       "",
       "decrypt an AWS Encryption SDK message (suite 0x0478) with a private key",
       "Refuses legacy suites, reserved context keys, more than 16 wrapped keys, a commitment\n"
       "mismatch, bad frames and trailing bytes, each with its own error (exit 65). Plaintext\n"
       "is released frame by frame after each tag verified; --out is renamed into place only\n"
       "after the whole message verified, and removed otherwise.",
       {{"private-key", "KEY", "PEM private key (owner-only file), or a systemd credential name"},
        {"key-namespace", "NS", "raw RSA keyring namespace the message was encrypted to"},
        {"key-name", "NAME", "raw RSA keyring key name"},
        {"context", "K=V", "require this encryption context pair; repeat for more"},
        {"in", "FILE", "read FILE instead of stdin"},
        {"out", "FILE", "write FILE (mode 0600) instead of stdout"}},
       false},
      {"keygen",
       "",
       "make an RSA-4096 key pair for archives and backups",
       "Writes the private key (PKCS#8 PEM, mode 0600, never overwriting) and the public key\n"
       "(PEM, 0644). Keep the private key offline: the worker needs only the public key.",
       {{"out-private", "FILE", "where to write the private key"},
        {"out-public", "FILE", "where to write the public key"}},
       false},
      {"version", "", "print lethe's version and schema version", "", {}, false},
  };
  return k_commands;
}

Parsed parse(const std::vector<std::string>& args) {
  // Whether an option takes a value is a property of its name across all commands, so the
  // words can be told from option values before the command is known.
  auto takes_value = [](const std::string& name) {
    if (const OptionSpec* o = find_option(global_options(), name)) {
      return !o->value_name.empty();
    }
    for (const CommandSpec& c : commands()) {
      if (const OptionSpec* o = find_option(c.options, name)) {
        return !o->value_name.empty();
      }
    }
    return false;
  };
  Parsed p;
  std::vector<std::string> words;
  std::vector<std::pair<std::string, std::optional<std::string>>> opts;
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
  // The longest command name that the leading words spell.
  for (const CommandSpec& c : commands()) {
    size_t n = static_cast<size_t>(std::count(c.name.begin(), c.name.end(), ' ')) + 1;
    if (words.size() < n) {
      continue;
    }
    std::string joined;
    for (size_t i = 0; i < n; ++i) {
      joined += (i ? " " : "") + words[i];
    }
    if (joined == c.name && (p.command == nullptr || c.name.size() > p.command->name.size())) {
      p.command = &c;
    }
  }
  if (p.command == nullptr) {
    if (words.empty()) {
      p.help = true;
      return p;
    }
    throw Error(Exit::usage,
                "unknown command '" + words[0] + (words.size() > 1 ? " " + words[1] : "") + "'",
                "see `lethe --help` for the list of commands");
  }
  size_t consumed =
      static_cast<size_t>(std::count(p.command->name.begin(), p.command->name.end(), ' ')) + 1;
  p.positionals.assign(words.begin() + static_cast<long>(consumed), words.end());
  std::string cmd(p.command->name);
  if (!p.positionals.empty() && p.command->positionals.empty()) {
    throw Error(Exit::usage,
                "unexpected argument '" + p.positionals[0] + "' for `lethe " + cmd + "`",
                "see `lethe " + cmd + " --help`");
  }
  for (const auto& [name, value] : opts) {
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
  return p;
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
