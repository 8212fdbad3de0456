// Lethe's configuration: loaded from one TOML file, checked against the key table
// (worker/settings/keys.cpp), with every value's file:line:column kept for later messages.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <vector>

namespace lethe::settings {

inline constexpr const char* k_default_config_path = "/etc/lethe/lethe.toml";

// "file:line:column" of a value in the configuration file.
using Where = std::string;

enum class Strategy { set_null, constant, hmac, json };
// columns: each PII column by its own strategy; delete_row: the row goes; keep: a table of Amazon
// Information that is not PII (order items, fees, refunds), left by the purge and erased with
// its order by a deletion request.
enum class TableStrategy { columns, delete_row, keep };

// A path to a value inside a JSON document: object keys from the top, e.g. {"BuyerInfo",
// "BuyerEmail"} for "BuyerInfo.BuyerEmail" (a key of digits also indexes an array).
using JsonPath = std::vector<std::string>;

struct PiiColumn {
  std::string name;
  Strategy strategy = Strategy::set_null;
  std::string value; // replacement for Strategy::constant
  // Strategy::json: the values taken out of the document, and those replaced by their hmac
  // pseudonym. No hmac path is at or inside a removed one, or inside another hmac path.
  std::vector<JsonPath> remove;
  std::vector<JsonPath> hmac;
  // What it holds, for the record of processing (C16): one of k_categories; empty when the map
  // does not say, which `lethe config check` refuses.
  std::string category;
  Where where;
};

// The categories a PII column may declare (`category = "email"`).
inline constexpr std::array<std::string_view, 12> k_categories{
    "name",     "email",   "phone",  "address",          "postal_code",
    "tax_id",   "company", "region", "buyer_identifier", "free_text",
    "document", "other"};

struct NeverShipped {
  std::vector<std::string> statuses;
  std::string since;
  long days = 0;
  Where where;
};

// One column, or several in order: a composite key and the link that references it.
using Columns = std::vector<std::string>;

struct PiiTable {
  std::string table;     // as written, maybe schema-qualified
  std::string parent;    // empty for the root
  Columns link;          // columns here referencing parent_column of the parent, pairwise
  Columns parent_column; // resolved: never empty for a child
  Columns key;           // unique key: the root's key, or a child's own key (may be empty)
  TableStrategy strategy = TableStrategy::columns;
  std::vector<PiiColumn> columns;
  // Columns declared to hold no PII: reviewed in the map, so schema drift checks
  // (worker/db/drift.hpp) do not report them.
  std::vector<std::string> not_pii;
  // Why the seller processes it (C16): the table's `purpose`, else pii.purpose.
  std::string purpose;
  Where where;
};

struct Root {
  PiiTable table; // its `key` is the root key
  std::string shipped_at;
  std::string status;
  std::vector<NeverShipped> never_shipped;
  // The root's columns holding SP-API's identifiers a deletion request names (optional): the
  // SellerId, the MarketplaceId (only with a seller) and the buyer's identifier as the app
  // stores it (an email the purge may already have turned into its hmac pseudonym).
  std::string seller;
  std::string marketplace;
  std::string buyer;
};

struct Database {
  std::string dsn;
  std::string sslrootcert;
  std::string password_file;
  std::string password_credential = "lethe-db-password";
  long connect_timeout_s = 10;
  long lock_timeout_ms = 2000;
  long statement_timeout_ms = 300000;
  Where where;
};

// One struct per configuration section; each member is bound once to its key in
// worker/settings/keys.cpp, where its default is read from these initializers.
struct Audit {
  std::filesystem::path anchor_file = "/var/lib/lethe/audit-anchor";
  std::filesystem::path spool_file = "/var/lib/lethe/audit-spool";
};

struct Retention {
  long days = 30;
};

struct Purge {
  long batch_size = 1000;
  long workers = 2;
  long max_rows_per_run = 100000;
  double max_fraction_of_table = 0.25;
};

struct Archive {
  std::filesystem::path spool_dir = "/var/lib/lethe/archive-spool";
  std::vector<std::string> recipients;
  std::vector<Where> recipients_where; // one per recipient
  std::string key_namespace = "lethe-archive";
  std::string key_name = "archive";
  long member_mib = 2;
};

struct Hold {
  std::string predicate;
  Where where; // of the [hold] table
  long archive_years = 10;
};

struct Requests {
  long max_orders = 1000;
  long warn_hours = 12;
  std::filesystem::path ledger_file = "/var/lib/lethe/deletion-ledger";
  // archive-then-erase: a held order is archived (by `lethe archive run`) before its live rows
  // are erased; erase: erased at once.
  std::string held_orders = "archive-then-erase";
  std::filesystem::path return_dir = "/var/lib/lethe/returns";
};

// Encrypted backups (C3, C4, C6): pg_dump streamed through the encryption core.
struct Backup {
  std::filesystem::path spool_dir = "/var/lib/lethe/backup-spool";
  std::vector<std::string> recipients;
  std::vector<Where> recipients_where; // one per recipient
  std::string key_namespace = "lethe-backup";
  std::string key_name = "backup";
  long keep_days = 35;
  long interval_hours = 24; // how often `lethe backup run` runs (its timer)
  long expire_hours = 24;   // how often `lethe backup expire` runs (its timer)
  std::string pg_dump = "pg_dump";
  std::string pg_restore = "pg_restore";
  Where where; // of backup.keep_days, for the 90-day rule's message
};

// Restore drills: where the scratch database goes and how long it may take.
struct Drill {
  std::string dsn; // empty: database.dsn's server
  long keep_hours = 0;
  long timeout_s = 3600;
  long overdue_grace_hours = 24; // the purge's cadence: PII due since its last run is not late
};

// Prometheus textfile-collector output (C15).
struct Metrics {
  std::filesystem::path textfile_dir; // empty: no metrics files
};

// Anomaly alarms (C15).
struct Alarms {
  double volume_factor = 3.0;
  long requests_per_day = 20;
};

struct Settings {
  std::filesystem::path source;
  Database database;
  Audit audit;
  Retention retention;
  Purge purge;
  std::string hmac_key_file; // pii.hmac_key_file
  Root root;
  std::vector<PiiTable> children; // PII tables below the root, parents before their children
  // strategy = "keep" tables: below a PII table or another keep table, parents first; never in
  // pii_tables(), so nothing that reads or sanitizes PII sees them.
  std::vector<PiiTable> keep_tables;
  Archive archive;
  Hold hold;
  Requests requests;
  Backup backup;
  Drill drill;
  Metrics metrics;
  Alarms alarms;

  // The root followed by the children, parents first.
  std::vector<const PiiTable*> pii_tables() const;
  // The keep tables, parents first.
  std::vector<const PiiTable*> kept_tables() const;
  // The PII-map table (PII or keep) named `name`, or nullptr.
  const PiiTable* find_table(const std::string& name) const;
};

// Loads and validates `path` (syntax, unknown keys, types, required keys, value ranges and the
// PII map's shape). Throws Error(config) listing every problem with file:line:column.
Settings load(const std::filesystem::path& path);

// Same, from text; `name` is used in messages. Used by tests.
Settings load_from_string(const std::string& text, const std::string& name);

// The configuration file to read: `--config` value if given, else $LETHE_CONFIG, else the default.
std::filesystem::path resolve_path(const std::string& cli_value);

// A JSON path as the map writes it: its keys joined by dots, "BuyerInfo.BuyerEmail".
std::string json_path_text(const JsonPath& path);

// A stable SHA-256 hex digest of the PII map (tables, links, columns, strategies, clocks, hold),
// recorded with runs and archives so a change of map is visible.
std::string pii_map_digest(const Settings& s);

// The record of processing (C16) names what each PII column holds. Each PII column without a
// category, as "<where>: PII column <table>.<column> has no category".
std::vector<std::string> uncategorized_columns(const Settings& s);
// The hint that lists the categories to choose from.
std::string categories_hint();
// Error(config) listing every PII column without a category.
void require_categories(const Settings& s);

} // namespace lethe::settings
