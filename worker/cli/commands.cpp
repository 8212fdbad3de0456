#include "worker/cli/commands.hpp"

#include "jobs/archive/archive.hpp"
#include "jobs/audit/audit.hpp"
#include "jobs/backup/backup.hpp"
#include "jobs/check/check.hpp"
#include "jobs/config/config.hpp"
#include "jobs/crypt/crypt.hpp"
#include "jobs/evidence/evidence.hpp"
#include "jobs/incident/incident.hpp"
#include "jobs/migrate/migrate.hpp"
#include "jobs/purge/purge.hpp"
#include "jobs/request/request.hpp"
#include "worker/db/migrations.hpp"
#include "worker/db/session.hpp"
#include "worker/runtime/metrics.hpp"
#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <cstdio>
#include <iostream>

namespace lethe::cli {
namespace {

constexpr OptionSpec k_json = opt::flag("json", "print JSON instead of text");
constexpr OptionSpec k_as_of =
    opt::text("as-of", "TIMESTAMP",
              "evaluate retention clocks at this instant instead of the database's now()");

// Readers: each reads its command's options (usage errors surface here) and returns the run.

Run read_version(const Args&) {
  return [](Env&) {
    std::cout << "lethe " << LETHE_VERSION << " (schema version " << db::known_schema_version()
              << ")\n";
    return 0;
  };
}

Run read_encrypt(const Args& a) {
  jobs::crypt::EncryptOptions o;
  o.recipients = a.all("recipient");
  o.key_namespace = a.text("key-namespace");
  o.key_name = a.text("key-name");
  o.context = a.all("context");
  if (std::optional<long> n = a.integer("frame-length")) {
    o.frame_length = static_cast<std::uint32_t>(*n);
  }
  o.in = a.text("in");
  o.out = a.text("out");
  return [o](Env&) { return jobs::crypt::run_encrypt(o); };
}

Run read_decrypt(const Args& a) {
  jobs::crypt::DecryptOptions o{a.text("private-key"), a.text("key-namespace"),
                                a.text("key-name"),    a.all("context"),
                                a.text("in"),          a.text("out")};
  return [o](Env&) { return jobs::crypt::run_decrypt(o); };
}

Run read_keygen(const Args& a) {
  return [priv = a.text("out-private"), pub = a.text("out-public")](Env&) {
    return jobs::crypt::run_keygen(priv, pub);
  };
}

Run read_config_approve(const Args& a) {
  return [who = a.text("operator"), why = a.text("reason")](Env& env) {
    return jobs::config::run_config_approve(env.context(), who, why);
  };
}

Run read_config_discover(const Args& a) {
  return [rows = a.integer("sample").value_or(0), json = a.flag("json")](Env& env) {
    return jobs::config::run_config_discover(env.context(), rows, json);
  };
}

Run read_config_keys(const Args& a) {
  return [json = a.flag("json")](Env&) { return jobs::config::run_config_keys(json); };
}

Run read_config_check(const Args& a) {
  return [offline = a.flag("offline")](Env& env) {
    if (!offline) {
      return jobs::config::run_config_check(env.context());
    }
    const settings::Settings& s = env.settings();
    db::validate_dsn(s.database);
    jobs::config::check_files(s);
    settings::require_categories(s);
    std::cout << "configuration " << s.source.string() << " is valid (not checked against a "
              << "database)\n";
    return 0;
  };
}

Run read_grants(const Args&) {
  return [](Env& env) { return jobs::config::run_grants(env.settings()); };
}

Run read_migrate(const Args&) {
  return [](Env& env) { return jobs::migrate::run_migrate(env.context()); };
}

Run read_purge(const Args& a) {
  jobs::purge::PurgeOptions o;
  o.as_of = a.text("as-of");
  o.dry_run = a.flag("dry-run");
  o.json = a.flag("json");
  o.force = a.flag("force");
  o.batch_size = a.integer("batch-size").value_or(0);
  o.workers = static_cast<int>(a.integer("workers").value_or(0));
  return [o](Env& env) { return jobs::purge::run_purge(env.context(), o); };
}

Run read_check(const Args& a) {
  jobs::check::CheckOptions o{a.text("as-of"), a.flag("json")};
  return [o](Env& env) { return jobs::check::run_check(env.context(), o); };
}

Run read_archive_run(const Args& a) {
  jobs::archive::RunOptions o{a.text("as-of"), a.flag("json")};
  return [o](Env& env) { return jobs::archive::run_archive(env.context(), o); };
}

// --subset K/N with 1 <= K <= N.
template <class Options>
void read_subset(const Args& a, Options& o) {
  std::string v = a.text("subset");
  if (v.empty()) {
    return;
  }
  int k = 0;
  int n = 0;
  char extra = 0;
  if (std::sscanf(v.c_str(), "%d/%d%c", &k, &n, &extra) != 2 || n < 1 || k < 1 || k > n) {
    throw Error(Exit::usage, "--subset takes K/N with 1 <= K <= N", "e.g. --subset 3/7");
  }
  o.subset_index = k;
  o.subset_count = n;
}

Run read_archive_verify(const Args& a) {
  jobs::archive::VerifyOptions o;
  o.read_data = a.flag("read-data");
  o.private_key = a.text("private-key");
  o.max_duration_s = a.integer("max-duration").value_or(0);
  read_subset(a, o);
  o.json = a.flag("json");
  return [o](Env& env) { return jobs::archive::run_verify(env.context(), o); };
}

// The one ARCHIVE argument of restore, mark-cold and mark-destroyed.
std::string archive_id(const Args& a) {
  if (a.positionals().size() != 1) {
    throw Error(Exit::usage, "`lethe " + std::string(a.command().name) + "` takes one archive id",
                "see `lethe archive list`");
  }
  return a.positionals()[0];
}

Run read_archive_restore(const Args& a) {
  std::string id = archive_id(a);
  jobs::archive::RestoreOptions o{id, a.text("private-key"), a.text("reason"), a.text("into"),
                                  a.text("into-db")};
  return [o](Env& env) { return jobs::archive::run_restore(env.context(), o); };
}

Run read_archive_rewrite(const Args& a) {
  jobs::archive::RewriteOptions o{archive_id(a), a.integer("exclude-request").value_or(0),
                                  a.text("private-key"), a.text("operator"), a.text("reason")};
  return [o](Env& env) { return jobs::archive::run_rewrite(env.context(), o); };
}

Run read_mark_cold(const Args& a) {
  return
      [id = archive_id(a)](Env& env) { return jobs::archive::run_mark(env.context(), id, "cold"); };
}

Run read_mark_destroyed(const Args& a) {
  return [id = archive_id(a)](Env& env) {
    return jobs::archive::run_mark(env.context(), id, "destroyed");
  };
}

Run read_archive_list(const Args& a) {
  return [json = a.flag("json")](Env& env) { return jobs::archive::run_list(env.context(), json); };
}

Run read_archive_expire(const Args& a) {
  return [as_of = a.text("as-of")](Env& env) {
    return jobs::archive::run_expire(env.context(), as_of);
  };
}

Run read_backup_run(const Args& a) {
  return
      [json = a.flag("json")](Env& env) { return jobs::backup::run_backup(env.context(), json); };
}

Run read_backup_list(const Args& a) {
  return [json = a.flag("json")](Env& env) { return jobs::backup::run_list(env.context(), json); };
}

Run read_backup_verify(const Args& a) {
  jobs::backup::VerifyOptions o;
  o.read_data = a.flag("read-data");
  o.private_key = a.text("private-key");
  o.max_duration_s = a.integer("max-duration").value_or(0);
  read_subset(a, o);
  o.json = a.flag("json");
  return [o](Env& env) { return jobs::backup::run_verify(env.context(), o); };
}

Run read_backup_expire(const Args& a) {
  return [as_of = a.text("as-of"), json = a.flag("json")](Env& env) {
    return jobs::backup::run_expire(env.context(), as_of, json);
  };
}

std::string backup_id(const Args& a) {
  if (a.positionals().size() != 1) {
    throw Error(Exit::usage, "`lethe " + std::string(a.command().name) + "` takes one backup id",
                "see `lethe backup list`");
  }
  return a.positionals()[0];
}

Run read_backup_mark_cold(const Args& a) {
  return
      [id = backup_id(a)](Env& env) { return jobs::backup::run_mark(env.context(), id, "cold"); };
}

Run read_backup_mark_destroyed(const Args& a) {
  return [id = backup_id(a)](Env& env) {
    return jobs::backup::run_mark(env.context(), id, "destroyed");
  };
}

Run read_drill_run(const Args& a) {
  jobs::backup::DrillOptions o;
  o.private_key = a.text("private-key");
  o.backup_id = a.text("backup");
  o.random_within_days = a.integer("random-within").value_or(0);
  int chosen = (o.backup_id.empty() ? 0 : 1) + (a.flag("latest") ? 1 : 0) +
               (a.integer("random-within") ? 1 : 0);
  bool bad_days = a.integer("random-within") && o.random_within_days < 1;
  o.json = a.flag("json");
  o.operator_name = a.text("operator");
  return [o, chosen, bad_days](Env& env) {
    if (chosen > 1) {
      throw Error(Exit::usage, "--backup, --latest and --random-within exclude each other",
                  "name one backup, or let the drill choose (the newest by default)");
    }
    if (bad_days) {
      throw Error(Exit::usage, "--random-within takes a number of days of at least 1",
                  "e.g. --random-within 30");
    }
    return jobs::backup::run_drill(env.context(), o);
  };
}

Run read_drill_list(const Args& a) {
  return [json = a.flag("json")](Env& env) {
    return jobs::backup::run_drill_list(env.context(), json);
  };
}

Run read_restore(const Args& a) {
  jobs::backup::DrillOptions o;
  o.restore = true;
  o.private_key = a.text("private-key");
  o.backup_id = a.text("backup");
  o.into_db = a.text("into-db");
  o.reason = a.text("reason");
  o.operator_name = a.text("operator");
  o.json = a.flag("json");
  return [o](Env& env) {
    if (o.backup_id.empty()) {
      throw Error(Exit::usage, "`lethe restore` needs --backup ID", "see `lethe backup list`");
    }
    return jobs::backup::run_drill(env.context(), o);
  };
}

Run read_audit_verify(const Args& a) {
  return [json = a.flag("json")](Env& env) { return jobs::audit::run_verify(env.context(), json); };
}

Run read_audit_reanchor(const Args& a) {
  return [who = a.text("operator"), why = a.text("reason")](Env& env) {
    return jobs::audit::run_reanchor(env.context(), who, why);
  };
}

Run read_audit_show(const Args& a) {
  return [limit = a.integer("limit").value_or(50), job = a.text("job"), json = a.flag("json")](
             Env& env) { return jobs::audit::run_show(env.context(), limit, job, json); };
}

Run read_request_add(const Args& a) {
  jobs::request::AddOptions o;
  o.amazon_ref = a.text("amazon-ref");
  o.notice_at = a.text("notice-at");
  o.scope = a.text("scope");
  o.scope_file = a.text("scope-file");
  o.action = a.text("action");
  o.return_to = a.text("return-to");
  o.operator_name = a.text("operator");
  o.reason = a.text("reason");
  if (std::optional<long> n = a.integer("confirm-count")) {
    o.confirm_count = *n;
  }
  o.json = a.flag("json");
  return [o](Env& env) { return jobs::request::run_add(env.context(), o); };
}

// The one request ID argument of show and cancel.
// The one positional id of a command over `what` ("request", "incident"), a number.
long long positional_id(const Args& a, const std::string& what) {
  const std::string msg = "`lethe " + std::string(a.command().name) + "` takes one " + what + " id";
  const std::string hint = "see `lethe " + what + " list`";
  if (a.positionals().size() != 1) {
    throw Error(Exit::usage, msg, hint);
  }
  const std::string& v = a.positionals()[0];
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) {
    throw Error(Exit::usage, msg + " (a number)", hint);
  }
  return std::stoll(v);
}

long long request_id(const Args& a) {
  return positional_id(a, "request");
}

Run read_request_run(const Args& a) {
  jobs::request::RunOptions o{a.integer("request").value_or(0), a.flag("json")};
  return [o](Env& env) { return jobs::request::run_requests(env.context(), o); };
}

Run read_ledger_verify(const Args& a) {
  return [json = a.flag("json")](Env& env) {
    return jobs::request::run_ledger_verify(env.context(), json);
  };
}

Run read_request_replay(const Args& a) {
  jobs::request::ReplayOptions o{a.text("into-db"), a.text("since"), a.flag("json")};
  return [o](Env& env) { return jobs::request::run_replay(env.context(), o); };
}

Run read_request_certify(const Args& a) {
  return [id = request_id(a), out = a.text("out"), format = a.text("format")](Env& env) {
    return jobs::request::run_certify(env.context(), id, out, format);
  };
}

Run read_copy_add(const Args& a) {
  return [id = request_id(a), what = a.text("what"), expires = a.text("expires-at"),
          who = a.text("operator")](Env& env) {
    return jobs::request::run_copy_add(env.context(), id, what, expires, who);
  };
}

Run read_copy_destroyed(const Args& a) {
  long long id = request_id(a);
  std::optional<long> no = a.integer("copy");
  if (!no) {
    throw Error(Exit::usage, "`lethe request copy destroyed` needs --copy N",
                "the copy's number, as `lethe request show ID` lists it");
  }
  return
      [id, no = static_cast<int>(*no), who = a.text("operator"), why = a.text("reason")](Env& env) {
        return jobs::request::run_copy_destroyed(env.context(), id, no, who, why);
      };
}

Run read_request_list(const Args& a) {
  return [as_of = a.text("as-of"), json = a.flag("json")](Env& env) {
    return jobs::request::run_list(env.context(), as_of, json);
  };
}

Run read_request_show(const Args& a) {
  return [id = request_id(a), as_of = a.text("as-of"), json = a.flag("json")](Env& env) {
    return jobs::request::run_show(env.context(), id, as_of, json);
  };
}

Run read_request_cancel(const Args& a) {
  return [id = request_id(a), who = a.text("operator"), why = a.text("reason")](Env& env) {
    return jobs::request::run_cancel(env.context(), id, who, why);
  };
}

Run read_inventory(const Args& a) {
  jobs::evidence::InventoryOptions o{a.text("format").empty() ? "md" : a.text("format"),
                                     a.text("out")};
  return [o](Env& env) { return jobs::evidence::run_inventory(env.context(), o); };
}

Run read_report(const Args& a) {
  jobs::evidence::ReportOptions o{a.text("from"), a.text("to"),
                                  a.text("format").empty() ? "html" : a.text("format"),
                                  a.text("out")};
  return [o](Env& env) { return jobs::evidence::run_report(env.context(), o); };
}

long long incident_id(const Args& a) {
  return positional_id(a, "incident");
}

Run read_incident_list(const Args& a) {
  return [all = a.flag("all"), json = a.flag("json")](Env& env) {
    return jobs::incident::run_list(env.context(), all, json);
  };
}

Run read_incident_show(const Args& a) {
  return [id = incident_id(a), json = a.flag("json")](Env& env) {
    return jobs::incident::run_show(env.context(), id, json);
  };
}

Run read_incident_open(const Args& a) {
  jobs::incident::Change c;
  c.operator_name = a.text("operator");
  c.type = a.text("type");
  c.text = a.text("reason");
  return [c](Env& env) { return jobs::incident::run_open(env.context(), c); };
}

Run read_incident_ack(const Args& a) {
  jobs::incident::Change c;
  c.id = incident_id(a);
  c.operator_name = a.text("operator");
  return [c](Env& env) { return jobs::incident::run_ack(env.context(), c); };
}

Run read_incident_notify(const Args& a) {
  jobs::incident::Change c;
  c.id = incident_id(a);
  c.operator_name = a.text("operator");
  c.text = a.text("channel");
  c.at = a.text("at");
  return [c](Env& env) { return jobs::incident::run_notify(env.context(), c); };
}

Run read_incident_note(const Args& a) {
  jobs::incident::Change c;
  c.id = incident_id(a);
  c.operator_name = a.text("operator");
  c.text = a.text("text");
  c.remediation = a.flag("remediation");
  return [c](Env& env) { return jobs::incident::run_note(env.context(), c); };
}

Run read_incident_close(const Args& a) {
  jobs::incident::Change c;
  c.id = incident_id(a);
  c.operator_name = a.text("operator");
  c.text = a.text("reason");
  c.no_notice_owed = a.flag("no-notice-owed");
  return [c](Env& env) { return jobs::incident::run_close(env.context(), c); };
}

} // namespace

// One long function on purpose: it is the command table, one entry per command, read top to
// bottom as `lethe --help` lists them; splitting it would scatter the table.
const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> k_commands{
      {"migrate",
       "",
       "create or upgrade lethe's own schema in the database",
       "Applies the numbered migrations this binary carries (each in one transaction, its version\n"
       "recorded in lethe.schema_version). Safe to run again. Refuses a schema newer than this\n"
       "binary knows. Run it as the database owner. Writes an audit record.",
       {},
       Needs::database,
       read_migrate},
      {"purge",
       "",
       "remove buyer PII whose retention clock has run out (C1)",
       "Sanitizes every order due by the PII map's clocks (shipment + retention.days, or the\n"
       "never_shipped clocks) across the root and child tables, by each column's strategy, in\n"
       "small committed batches; held orders are skipped until archived. Refuses to run above\n"
       "the safety limits (exit 65) unless --force; a second purge exits 75. SIGTERM finishes\n"
       "the current batch and exits 75. Ends with VACUUM of the touched tables and statistics.",
       {k_as_of, opt::flag("dry-run", "change nothing; print per table what would be sanitized"),
        opt::flag("force", "run above the safety limits (recorded in the audit trail)"),
        opt::integer("batch-size", "N",
                     "orders in the first batch (default purge.batch_size; adapts)"),
        opt::integer("workers", "N", "parallel connections (default purge.workers)"), k_json},
       Needs::database,
       read_purge},
      {"check",
       "",
       "report PII past its deadline and deletion requests near theirs (monitoring probe)",
       "Counts, per PII-map table, rows that still hold PII after their deadline, and the age\n"
       "of the oldest; rows under regulatory hold are listed apart (C1). Lists each deletion\n"
       "request past a deadline it has not met, or within requests.warn_hours of it (C5, C6).\n"
       "Lists schema drift against the last `lethe config approve`, each item with a HINT;\n"
       "drift that could hold PII the map does not reach is an alarm. Reads only lethe's state\n"
       "views, requests, audit trail and the catalog, never a PII value. Exit 0 when nothing\n"
       "needs attention, 1 when something does.",
       {k_as_of, k_json},
       Needs::database,
       read_check},
      {"config check",
       "",
       "validate the configuration against the live database catalog",
       "Loads the configuration (syntax, keys, types, PII-map shape), connects with verified\n"
       "TLS and checks every table and column of the PII map, key indexes, the hold predicate\n"
       "and lethe's state views. A mismatch is refused (exit 78) and recorded in the audit trail.",
       {opt::flag("offline", "check the file only; do not connect")},
       Needs::config,
       read_config_check},
      {"config approve",
       "",
       "approve the schema the PII map reaches, so `lethe check` sees what changes (C1)",
       "Records, in an audit record naming --operator and --reason, every column (name, type,\n"
       "nullability) of every mapped table and of every table that references a mapped table\n"
       "or sits in a mapped table's schema. `lethe check` and `config check` list the drift\n"
       "from it; `lethe check` exits 1 on drift that could hold PII. Refused (exit 78) while a\n"
       "text-like column of a mapped table is neither mapped nor listed in its not_pii: an\n"
       "approval never covers such a column. Needs INSERT on lethe.audit_log (the owner).",
       {opt::text("reason", "TEXT", "why (required; recorded in the audit trail; never PII)")},
       Needs::database,
       read_config_approve},
      {"config discover",
       "",
       "list PII candidates in the whole database: by name and type, and in a sample",
       "Rates every text-like column (text, varchar, char, json, jsonb, inet, bytea, ...) of\n"
       "every table by its name (email, phone, name, address, city, zip, ip, birth, tax, vat,\n"
       "iban, card, message, note, comment, instructions, ... as words of snake or camel case)\n"
       "and says what the PII map makes of it: mapped, not_pii, mentioned (a key, link or\n"
       "clock) or unmapped. With --sample N, as a role that may read the columns (the owner),\n"
       "counts how many of up to N sampled values (TABLESAMPLE) look like emails, phone\n"
       "numbers, IBANs or street addresses, and lists the candidate keys of JSON documents on\n"
       "their first two levels. Prints names and counts only, never a value.",
       {opt::integer("sample", "N", "sample up to N rows of each candidate column"), k_json},
       Needs::database,
       read_config_discover},
      {"config keys",
       "",
       "list every configuration key with its type, default and meaning",
       "The one table of keys the loader accepts.",
       {k_json},
       Needs::nothing,
       read_config_keys},
      {"grants",
       "",
       "print least-privilege SQL for lethe's roles, derived from the PII map",
       "Prints a script for the database owner: state views (which rows hold PII, when they\n"
       "fall due, no PII values) and one role per job with column-level grants (C11).",
       {},
       Needs::config,
       read_grants},
      {"audit verify",
       "",
       "check the audit trail's hash chain and anchor file",
       "Recomputes every record's SHA-256 link (version 2 covers the database role that\n"
       "inserted the record, stamped by the server) and compares the chain with the anchor\n"
       "file (audit.anchor_file): every line must read '<seq> <sha256>' and match its record,\n"
       "no line may name a record the table lacks, and a non-empty table needs a non-empty\n"
       "anchor (see `lethe audit reanchor`). An unterminated last line is a torn append,\n"
       "reported and cut off by the next append. Errors name the record and the anchor\n"
       "file's line. Exit 65 when broken. The result is itself recorded: a run record, or an\n"
       "alarm (which opens an incident) when the chain is broken; the metrics show the last.",
       {k_json},
       Needs::database,
       read_audit_verify},
      {"audit reanchor",
       "",
       "start a new anchor file after it was lost or edited (audited: who and why)",
       "When the anchor file is absent, empty or holds lines that do not parse, appends a\n"
       "manual audit record naming --operator and --reason, keeps the old file as\n"
       "<anchor>.replaced-<seq> and starts a new anchor file at that record. Refused (exit 65)\n"
       "when the chain is broken or an anchor line disagrees with the table.",
       {opt::text("reason", "TEXT", "why (required; recorded in the audit trail; never PII)")},
       Needs::database,
       read_audit_reanchor},
      {"audit show",
       "",
       "list audit records, oldest first",
       "Prints the newest records (text, or JSON lines with --json).",
       {opt::integer("limit", "N", "how many of the newest records (default 50)"),
        opt::text("job", "NAME", "only records of this job"), k_json},
       Needs::database,
       read_audit_show},
      {"archive run",
       "",
       "archive held orders whose PII is due, then sanitize them (C2)",
       "Selects held orders (hold.predicate) whose PII is due, writes one encrypted archive\n"
       "(tar + zstd inside an AWS Encryption SDK message to archive.recipients' public keys)\n"
       "to archive.spool_dir: temporary name, fsync, rename, fsync directory, re-read and\n"
       "check; records it in the catalog, and only then sanitizes the archived orders.\n"
       "Files an earlier crashed run left unrecorded are discarded first, and said so.",
       {k_as_of, k_json},
       Needs::database,
       read_archive_run},
      {"archive verify",
       "",
       "check cataloged archives: present, length and SHA-256; with the key, their members",
       "Without a key: every cataloged archive in the spool (or marked cold) has the recorded\n"
       "length and SHA-256. With --read-data --private-key: decrypts each and checks every\n"
       "member's SHA-256 and row count against the manifest. Exit 65 when any fails.",
       {opt::flag("read-data", "decrypt and check every member (needs --private-key)"),
        opt::text("private-key", "KEY",
                  "the archive private key (owner-only file or credential name)"),
        opt::integer("max-duration", "SECONDS", "stop starting new archives after this long"),
        opt::text("subset", "K/N",
                  "only every N-th archive, starting with the K-th (a week: 1/7 … 7/7)"),
        k_json},
       Needs::database,
       read_archive_verify},
      {"archive restore",
       "ARCHIVE",
       "write an archive's members out, or load them into a scratch schema (audited)",
       "For a legal or tax request: decrypts ARCHIVE with the offline private key and writes\n"
       "its members (mode 0600) under --into DIR, or creates --into-db SCHEMA with one table\n"
       "per archived table (recorded column types) and loads them. The audit record names the\n"
       "operator and the reason.",
       {opt::text("private-key", "KEY", "the archive private key"),
        opt::text("reason", "TEXT", "why (required; recorded in the audit trail; never PII)"),
        opt::path("into", "DIR", "write the members under DIR"),
        opt::text("into-db", "SCHEMA", "load into a new schema of this name")},
       Needs::database,
       read_archive_restore},
      {"archive rewrite",
       "ARCHIVE",
       "write a spooled archive anew without a deletion request's orders, destroy the old",
       "Run where the archive private key is. A spooled archive is a live copy of its orders,\n"
       "so a deletion request whose orders it holds stays open until it is gone. This reads\n"
       "ARCHIVE (checked against its catalog row, audit record and manifest), finds the\n"
       "request's orders by the keyed HMACs the request keeps (pii.hmac_key_file), and writes\n"
       "every other row into a new archive with the same retention, to archive.recipients;\n"
       "records it, then destroys ARCHIVE. Only a request whose live rows are erased. Run\n"
       "again after a crash: it finishes what was left. Needs --operator and --reason.",
       {opt::integer("exclude-request", "ID", "the deletion request whose orders go (required)"),
        opt::text("private-key", "KEY", "the archive private key (required)"),
        opt::text("reason", "TEXT", "why (required; recorded in the audit trail; never PII)")},
       Needs::database,
       read_archive_rewrite},
      {"archive list",
       "",
       "list cataloged archives",
       "One line (or JSON object) per archive.",
       {k_json},
       Needs::database,
       read_archive_list},
      {"archive expire",
       "",
       "destroy archives past their retention-until date (C6, C17)",
       "Overwrites and removes spooled archives past retention-until and marks them destroyed;\n"
       "an archive in cold storage is reported (and audited) for the operator to destroy there.",
       {k_as_of},
       Needs::database,
       read_archive_expire},
      {"archive mark-cold",
       "ARCHIVE",
       "record that ARCHIVE was moved to cold storage",
       "Run by the cold-storage process after it took the file from the spool.",
       {},
       Needs::database,
       read_mark_cold},
      {"archive mark-destroyed",
       "ARCHIVE",
       "record that ARCHIVE was destroyed in cold storage",
       "Run after destroying an expired archive held in cold storage.",
       {},
       Needs::database,
       read_mark_destroyed},
      {"request add",
       "",
       "register an Amazon deletion request (C5, C6, C19; audited: who and why)",
       "Registers Amazon's notice and resolves its scope at once to the orders it names (a\n"
       "buyer's orders whether the buyer column holds the email or the purge's pseudonym of\n"
       "it). Both clocks run from --notice-at: live data within 72 hours, every copy within\n"
       "90 days. Identifiers are kept only as keyed HMACs (pii.hmac_key_file). A buyer's email\n"
       "is never taken from the command line: --scope buyer:- reads it from standard input,\n"
       "or --scope-file FILE (owner-only) holds the scope. A second request with the same\n"
       "--amazon-ref, or a scope resolving to no order or to more than requests.max_orders,\n"
       "is refused (exit 65) unless --confirm-count N names the exact count.",
       {opt::text("amazon-ref", "REF", "Amazon's reference for the notice (required)"),
        opt::text("notice-at", "TIME", "when Amazon sent the notice (default: now)"),
        opt::text("scope", "SCOPE",
                  "order:ID[,ID...] | buyer:- (email on standard input) | "
                  "seller:SELLER_ID[/MARKETPLACE_ID]"),
        opt::path("scope-file", "FILE", "read the scope from FILE (owner-only), e.g. buyer:EMAIL"),
        opt::text("action", "delete|return",
                  "what Amazon asks for (required): return writes the data, encrypted to "
                  "--return-to, before the erase"),
        opt::path("return-to", "PUB.pem",
                  "for return: the RSA public key (3072/4096 bits) the data is encrypted to"),
        opt::text("reason", "TEXT", "why (required; recorded in the audit trail; never PII)"),
        opt::integer("confirm-count", "N",
                     "register a scope resolving to exactly N orders (0, or above the limit)", 0),
        k_json},
       Needs::database,
       read_request_add},
      {"request run",
       "",
       "execute registered deletion requests (hourly timer)",
       "For each request not yet erased: a return request's data (every mapped row of its\n"
       "orders, CSV in tar + zstd) is first written to requests.return_dir, one AWS Encryption\n"
       "SDK message to its --return-to key (raw RSA keyring lethe-return/return), recorded and\n"
       "registered as a copy to destroy once handed over. Then every mapped row of its orders,\n"
       "in every mapped table (keep tables included), is deleted deepest first in committed\n"
       "batches (a held order first waits for its archive under requests.held_orders =\n"
       "archive-then-erase); the touched tables are vacuumed (as their owner; otherwise\n"
       "autovacuum is waited for), an entry is appended to the deletion ledger\n"
       "(lethe.deletion_ledger and requests.ledger_file) and the request is live_erased. It\n"
       "becomes complete once no spooled archive holds its orders, every registered copy is\n"
       "destroyed and every table was vacuumed since the erase. Safe to rerun after a crash:\n"
       "it finishes the work and counts each row once. SIGTERM exits 75.",
       {opt::integer("request", "ID", "only this request"), k_json},
       Needs::database,
       read_request_run},
      {"request certify",
       "ID",
       "write the certificate of a deletion request for Amazon (HTML or text)",
       "What was deleted (orders, rows per table), when, by which runs and operators, each\n"
       "copy and when it went, and the audit records and ledger entry (seq and SHA-256) that\n"
       "prove it, so an auditor can check it against `lethe audit verify`. Only for a request\n"
       "whose live data was erased (exit 65 otherwise). No identifier appears in it.",
       {opt::path("out", "FILE", "where to write it (required; mode 0640)"),
        opt::text("format", "html|text", "default: text for a .txt file, else html")},
       Needs::database,
       read_request_certify},
      {"request copy add",
       "ID",
       "register another copy of a request's subjects that must go by its 90 days",
       "A copy lethe did not make (a WAL archive, an export, a replica's backup): the request\n"
       "is complete only once every registered copy is recorded as destroyed. A copy expiring\n"
       "after the request's 90-day deadline is an alarm record at once. Audited (operator).",
       {opt::text("what", "TEXT", "what and where the copy is (required; never PII)"),
        opt::text("expires-at", "TIME", "when it will be destroyed (required)")},
       Needs::database,
       read_copy_add},
      {"request copy destroyed",
       "ID",
       "record that a registered copy was destroyed (audited: who and why)",
       "",
       {opt::integer("copy", "N", "the copy's number (see `lethe request show ID`)"),
        opt::text("reason", "TEXT", "how it was destroyed (required; never PII)")},
       Needs::database,
       read_copy_destroyed},
      {"request ledger verify",
       "",
       "check the deletion ledger file against lethe.deletion_ledger",
       "Every line of requests.ledger_file must read '<seq> <sha256> <entry JSON>', hash to its\n"
       "recorded SHA-256 chained to the line before, and equal the table's entry; every table\n"
       "entry must be in the file. Exit 65 when not.",
       {k_json},
       Needs::database,
       read_ledger_verify},
      {"request replay",
       "",
       "re-apply the deletion ledger to a restored database (decision 4)",
       "Reads requests.ledger_file (its chain checked), finds every entry's subjects in the\n"
       "database again by their keyed HMACs (order ids, the buyer in clear or as the purge's\n"
       "pseudonym, the seller), erases what it finds through the engine, and puts back the\n"
       "ledger entries and requests the database lacks. Reports how many orders it found\n"
       "again; a second replay finds 0. Into another database than the configured one, the\n"
       "audit records are anchored in audit.anchor_file.replay-<name>.",
       {opt::text("into-db", "NAME|DSN",
                  "the database to replay into: a name on the configured server, or a DSN "
                  "(default: the configured database)"),
        opt::text("since", "TIME", "only entries erased at or after TIME"), k_json},
       Needs::database,
       read_request_replay},
      {"request list",
       "",
       "list deletion requests with their state and hours left",
       "One line (or JSON object) per request: state (overdue once a deadline passed with work\n"
       "left), the 72-hour and 90-day deadlines and the hours left to each.",
       {k_as_of, k_json},
       Needs::database,
       read_request_list},
      {"request show",
       "ID",
       "show one deletion request: deadlines, counts per table, copies",
       "Identifiers show only as a fingerprint (the first hex digits of their keyed HMAC).",
       {k_as_of, k_json},
       Needs::database,
       read_request_show},
      {"request cancel",
       "ID",
       "cancel a request that has not run (audited: who and why)",
       "Only a request still `received` can be cancelled; its Amazon reference may then be\n"
       "registered again.",
       {opt::text("reason", "TEXT", "why (required; recorded in the audit trail; never PII)")},
       Needs::database,
       read_request_cancel},
      {"inventory",
       "",
       "the record of processing activities (C16), from the PII map and the live catalog",
       "For each PII table and column: what it holds (its category in the map), the purpose,\n"
       "the retention rule and strategy, where copies live (live rows with PII, rows in spooled\n"
       "and cold archives and in backups), which database roles may read, change or delete it\n"
       "(from the catalog's grants, not the configuration) and how it is disposed of. Refused\n"
       "while a PII column has no category. Reads lethe's catalogs: use the owner's\n"
       "configuration.",
       {opt::text("format", "md|json|html", "output format (default md)"),
        opt::path("out", "FILE", "write to FILE (temporary file, rename) instead of stdout")},
       Needs::database,
       read_inventory},
      {"report",
       "",
       "the auditor's report: each policy clause C1-C19 with its evidence for a period",
       "One self-contained HTML file (inline CSS and SVG charts, no script, nothing loaded from\n"
       "elsewhere) or JSON with the same data: purge runs and rows per day, PII past its\n"
       "deadline over time (from `lethe check`), archives, deletion requests with both clocks,\n"
       "backups and drills with their recovery times, the audit chain verified as the report\n"
       "is made, incidents with their 24-hour clocks, alarms, and the record of processing. No\n"
       "PII. Its SHA-256 is recorded in the audit trail. Use the owner's configuration.",
       {opt::text("from", "TIME", "start of the period (default: 90 days before --to)"),
        opt::text("to", "TIME", "end of the period, exclusive (default: now)"),
        opt::text("format", "html|json", "output format (default html)"),
        opt::path("out", "FILE", "write to FILE (temporary file, rename) instead of stdout")},
       Needs::database,
       read_report},
      {"incident list",
       "",
       "list open incidents (--all: closed ones too) with their 24-hour notice clocks",
       "Every alarm record opens an incident, or adds to the open one of its kind (job and\n"
       "reason). Amazon must be told of a security incident within 24 hours of its opening\n"
       "(C18): `lethe check` exits 1 and the metrics show it once that is overdue.",
       {opt::flag("all", "closed incidents too"), k_json},
       Needs::database,
       read_incident_list},
      {"incident show",
       "ID",
       "an incident: its alarms, notice, acknowledgement, notes and closure",
       "",
       {k_json},
       Needs::database,
       read_incident_show},
      {"incident open",
       "",
       "open an incident for what an operator found (audited: who and why)",
       "Starts its 24-hour clock to inform Amazon. Needs --operator. The reason is refused when\n"
       "it quotes a value held in a PII column (the check reads those columns: use the owner's\n"
       "configuration).",
       {opt::text("type", "WORD", "what kind: one lowercase word, e.g. unauthorized_access"),
        opt::text("reason", "TEXT", "what was found (required; never PII)")},
       Needs::database,
       read_incident_open},
      {"incident ack",
       "ID",
       "acknowledge an incident: someone is on it (audited)",
       "Does not stop the 24-hour clock; only `incident notify` does. Needs --operator.",
       {},
       Needs::database,
       read_incident_ack},
      {"incident notify",
       "ID",
       "record that and how Amazon was told of the incident (audited)",
       "Records when (--at, default now; not before the incident opened, not in the future) and\n"
       "through which channel Amazon was informed. Once per incident. Needs --operator.",
       {opt::text("channel", "TEXT", "how Amazon was told, e.g. \"email to security@amazon.com\""),
        opt::text("at", "TIME", "when Amazon was told (default: now)")},
       Needs::database,
       read_incident_notify},
      {"incident note",
       "ID",
       "add an investigation or remediation note (audited; refused when it quotes PII)",
       "The note goes into the audit trail and the incident. It is refused, with nothing\n"
       "written, when it contains a value held in a PII column of the map (whole words, 3\n"
       "characters or more, case and the punctuation around words aside; json columns are not\n"
       "searched); the check reads those columns, so use the owner's configuration. Needs\n"
       "--operator.",
       {opt::text("text", "TEXT", "the note (required; never PII)"),
        opt::flag("remediation", "a remediation note (default: investigation)")},
       Needs::database,
       read_incident_note},
      {"incident close",
       "ID",
       "close an incident (audited: who and why)",
       "Refused while no notice to Amazon is recorded, unless --no-notice-owed states that\n"
       "none was owed (recorded as the operator's judgement). Needs --operator.",
       {opt::text("reason", "TEXT", "the remediation done or why it is closed (required)"),
        opt::flag("no-notice-owed", "no notice to Amazon was owed for this incident")},
       Needs::database,
       read_incident_close},
      {"backup run",
       "",
       "take an encrypted backup: pg_dump streamed to the backup public keys (C3, C4)",
       "Inserts the backup's marker row, exports a snapshot and counts every table in it, and\n"
       "streams `pg_dump --format=custom --snapshot` (TLS verify-full; the password only in its\n"
       "environment) through the encryption core into backup.spool_dir: no plaintext touches a\n"
       "disk. The dump and its manifest (versions, every table's row count) are sealed files;\n"
       "both are re-read, then cataloged with their audit record in one transaction. Files a\n"
       "killed run left are discarded first.",
       {k_json},
       Needs::database,
       read_backup_run},
      {"backup list",
       "",
       "list cataloged backups",
       "One line (or JSON object) per backup: state, snapshot time, retention, size.",
       {k_json},
       Needs::database,
       read_backup_list},
      {"backup verify",
       "",
       "check backups: present, length and SHA-256; with the key, the data",
       "Without a key: every backup not destroyed agrees with its catalog row and its\n"
       "backup_written audit record (length, SHA-256 of both files). With --read-data\n"
       "--private-key: decrypts the manifest and the dump, feeds the dump to `pg_restore --list`\n"
       "and checks its length and SHA-256 against the manifest. Audited; exit 65 when any fails.",
       {opt::flag("read-data", "decrypt and check the data (needs --private-key)"),
        opt::text("private-key", "KEY",
                  "the backup private key (owner-only file or credential name)"),
        opt::integer("max-duration", "SECONDS", "stop starting new backups after this long"),
        opt::text("subset", "K/N", "only every N-th backup, starting with the K-th"), k_json},
       Needs::database,
       read_backup_verify},
      {"backup expire",
       "",
       "destroy backups past their retention (C6): overwrite, unlink, mark destroyed",
       "A spooled backup whose retention ended (backup.keep_days after its snapshot) is\n"
       "overwritten, unlinked and marked destroyed with its audit record; that closes it in\n"
       "every deletion request that tracks it. A backup off this host is reported for the\n"
       "operator (mark-destroyed).",
       {k_as_of, k_json},
       Needs::database,
       read_backup_expire},
      {"backup mark-cold",
       "BACKUP",
       "record that BACKUP was moved off this host",
       "Run by the process that moved the files; audited with --operator.",
       {},
       Needs::database,
       read_backup_mark_cold},
      {"backup mark-destroyed",
       "BACKUP",
       "record that BACKUP was destroyed off this host",
       "Run after destroying an expired backup held elsewhere; audited with --operator.",
       {},
       Needs::database,
       read_backup_mark_destroyed},
      {"drill run",
       "",
       "restore drill: restore a backup into a scratch database, prove it, drop it (C4)",
       "Restores the chosen backup (the newest by default) into a new database\n"
       "lethe_drill_<source>_<run> on the drill server ([drill] dsn; default: the configured\n"
       "server) with pg_restore fed from the decrypting stream, then checks: the evidence, the\n"
       "manifest, the restore, the backup's marker row, every table's row count against the\n"
       "manifest, `lethe request replay` of the ledger since the backup (orders of erased\n"
       "subjects found before, 0 after) and no PII overdue as of the backup. The database is\n"
       "dropped, also on failure (drill.keep_hours keeps it). Recorded with its RTO; exit 1\n"
       "when a check fails or drill.timeout_s passes (an alarm record).",
       {opt::text("private-key", "KEY", "the backup private key (owner-only file or credential)"),
        opt::text("backup", "ID", "drill this backup"),
        opt::flag("latest", "drill the newest backup (the default)"),
        opt::integer("random-within", "DAYS", "drill a random backup taken within DAYS"), k_json},
       Needs::database,
       read_drill_run},
      {"drill list",
       "",
       "list recorded drills and restores",
       "One line (or JSON object) per drill: backup, result, failed check, RTO.",
       {k_json},
       Needs::database,
       read_drill_list},
      {"restore",
       "",
       "recover lost data: restore a backup into a new database, ledger replayed (audited)",
       "The drill's restore and checks into --into-db (a new database on the drill server),\n"
       "with the deletion ledger replayed before anyone uses it: no erased subject comes back.\n"
       "Kept when every check passed, dropped when one failed. Needs --operator and --reason.",
       {opt::text("backup", "ID", "the backup to restore (required)"),
        opt::text("private-key", "KEY", "the backup private key"),
        opt::text("into-db", "NAME", "the new database to restore into (required)"),
        opt::text("reason", "TEXT", "why (required; recorded in the audit trail; never PII)"),
        k_json},
       Needs::database,
       read_restore},
      {"encrypt",
       "",
       "encrypt a stream into an AWS Encryption SDK message (suite 0x0478)",
       "Wraps a fresh data key with RSA-OAEP-SHA256 to each recipient's public key and writes a\n"
       "framed, key-committing message that the official AWS Encryption SDK decrypts (raw RSA\n"
       "keyring, the same namespace and name). Reads stdin and writes stdout unless told\n"
       "otherwise; --out appears only when the message is complete.",
       {opt::repeated("recipient", "PUB.pem",
                      "RSA public key (3072 or 4096 bits); repeat for more"),
        opt::text("key-namespace", "NS", "raw RSA keyring namespace (provider id)"),
        opt::text("key-name", "NAME", "raw RSA keyring key name (provider info)"),
        opt::repeated("context", "K=V", "encryption context pair; repeat for more (never PII)"),
        opt::integer("frame-length", "N", "bytes of plaintext per frame (default 65536)"),
        opt::path("in", "FILE", "read FILE instead of stdin"),
        opt::path("out", "FILE", "write FILE (mode 0600) instead of stdout")},
       Needs::nothing,
       read_encrypt},
      {"decrypt",
       "",
       "decrypt an AWS Encryption SDK message (suite 0x0478) with a private key",
       "Refuses legacy suites, reserved context keys, more than 16 wrapped keys, a commitment\n"
       "mismatch, bad frames and trailing bytes, each with its own error (exit 65). Plaintext\n"
       "is released frame by frame after each tag verified; --out is renamed into place only\n"
       "after the whole message verified, and removed otherwise.",
       {opt::text("private-key", "KEY",
                  "PEM private key (owner-only file), or a systemd credential name"),
        opt::text("key-namespace", "NS", "raw RSA keyring namespace the message was encrypted to"),
        opt::text("key-name", "NAME", "raw RSA keyring key name"),
        opt::repeated("context", "K=V", "require this encryption context pair; repeat for more"),
        opt::path("in", "FILE", "read FILE instead of stdin"),
        opt::path("out", "FILE", "write FILE (mode 0600) instead of stdout")},
       Needs::nothing,
       read_decrypt},
      {"keygen",
       "",
       "make an RSA-4096 key pair for archives and backups",
       "Writes the private key (PKCS#8 PEM, mode 0600, never overwriting) and the public key\n"
       "(PEM, 0644). Keep the private key offline: the worker needs only the public key.",
       {opt::path("out-private", "FILE", "where to write the private key"),
        opt::path("out-public", "FILE", "where to write the public key")},
       Needs::nothing,
       read_keygen},
      {"version",
       "",
       "print lethe's version and schema version",
       "",
       {},
       Needs::nothing,
       read_version},
  };
  return k_commands;
}

const settings::Settings& Env::settings() {
  if (m_ctx) {
    return m_ctx->settings();
  }
  if (!m_settings) {
    m_settings = settings::load(settings::resolve_path(m_args.text("config")));
  }
  return *m_settings;
}

Context& Env::context() {
  if (!m_ctx) {
    settings();
    m_ctx = std::make_unique<Context>(std::move(*m_settings),
                                      util::current_identity(m_args.text("operator")),
                                      std::string(m_args.command().name));
    m_settings.reset();
  }
  return *m_ctx;
}

int run_command(const Parsed& p) {
  Args args(p);
  const CommandSpec& spec = args.command();
  if (spec.read == nullptr) {
    throw Error(Exit::internal, "command '" + std::string(spec.name) + "' has no handler",
                "this is a bug in lethe");
  }
  Env env(args);
  if (spec.needs != Needs::nothing) {
    env.settings(); // a configuration error comes before any option's
  }
  Run run = spec.read(args);
  if (spec.needs != Needs::database) {
    return run(env);
  }
  Context& ctx = env.context();
  // Every run that reached the database leaves the metrics of what it changed (C15), also when
  // it failed: its failure is one of them.
  int rc = 0;
  try {
    rc = run(env);
  } catch (...) {
    runtime::write_state_metrics(ctx);
    throw;
  }
  runtime::write_state_metrics(ctx);
  return rc;
}

} // namespace lethe::cli
