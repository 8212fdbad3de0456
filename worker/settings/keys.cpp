#include "worker/settings/keys.hpp"

#include "worker/settings/settings.hpp"

#include <array>
#include <charconv>
#include <cmath>

namespace lethe::settings {
namespace {

using K = KeyType;

// clang-format off
// Binds a key to its member: M(purge.batch_size) fills s.purge.batch_size.
#define M(member) +[](Settings& s) -> auto& { return s.member; }
#define W(member) +[](Settings& s) -> std::vector<Where>& { return s.member; }

constexpr std::string_view k_c1 = " (C1: PII is kept no longer than 30 days after shipment)";

constexpr std::array k_keys{
  KeySpec{"database", K::table, true,
          "how lethe reaches the order database"},
  KeySpec{"database.dsn", K::string, true,
          "libpq connection string (key=value or postgresql:// URI) without password; sslmode, if "
          "given, must be verify-full; Unix-socket hosts are refused (TLS on every channel, C9)",
          M(database.dsn)},
  KeySpec{"database.sslrootcert", K::string, true,
          "PEM file of the CA that signed the server certificate; the server is verified against it "
          "and its host name (sslmode=verify-full)",
          M(database.sslrootcert)},
  KeySpec{"database.password_file", K::string, false,
          "file holding the database password, owned by the running user, mode 0600 or 0400; "
          "empty: use the systemd credential below, else no password",
          M(database.password_file)},
  KeySpec{"database.password_credential", K::string, false,
          "name of the systemd credential ($CREDENTIALS_DIRECTORY) holding the password; used when "
          "password_file is empty",
          M(database.password_credential)},
  KeySpec{"database.connect_timeout_s", K::integer, false,
          "seconds to wait for a connection",
          M(database.connect_timeout_s), {1}},
  KeySpec{"database.lock_timeout_ms", K::integer, false,
          "session lock_timeout: a batch waiting longer for a row lock backs off and retries",
          M(database.lock_timeout_ms), {0}},
  KeySpec{"database.statement_timeout_ms", K::integer, false,
          "session statement_timeout for every statement lethe runs",
          M(database.statement_timeout_ms), {0}},

  KeySpec{"audit", K::table, false,
          "the tamper-evident audit trail (C13, C14, C17)"},
  KeySpec{"audit.anchor_file", K::string, false,
          "file outside the database to which the newest audit hash is appended and fsynced, so a "
          "truncated or rolled-back audit table is detected",
          M(audit.anchor_file)},
  KeySpec{"audit.spool_file", K::string, false,
          "audit records that could not reach the database (refused TLS, server down) wait here "
          "and are written to the database by the next run that connects",
          M(audit.spool_file)},

  KeySpec{"retention", K::table, false,
          "how long buyer PII may stay in the live database"},
  KeySpec{"retention.days", K::integer, false,
          "days after shipment after which an order's PII is due for purge (policy: at most 30)",
          M(retention.days), {1, 30, false, k_c1}},

  KeySpec{"purge", K::table, false,
          "the nightly purge job"},
  KeySpec{"purge.batch_size", K::integer, false,
          "orders per committed batch (adapted at run time to keep transactions short)",
          M(purge.batch_size), {1, 1000000}},
  KeySpec{"purge.workers", K::integer, false,
          "connections that sanitize in parallel, each on its own share of the orders "
          "(by key hash); 1 to 16",
          M(purge.workers), {1, 16}},
  KeySpec{"purge.max_rows_per_run", K::integer, false,
          "safety limit (C15): refuse a run that would sanitize more root rows than this",
          M(purge.max_rows_per_run), {1}},
  KeySpec{"purge.max_fraction_of_table", K::number, false,
          "safety limit (C15): refuse a run that would sanitize more than this share of the root "
          "table",
          M(purge.max_fraction_of_table), {0, 1, true}},

  KeySpec{"pii", K::table, true,
          "the PII map: where buyer PII lives in your schema"},
  KeySpec{"pii.hmac_key_file", K::string, false,
          "key file for the hmac strategy (owner-only mode); required when a column uses hmac"},
  KeySpec{"pii.purpose", K::string, false,
          "why the seller processes this PII, for the record of processing (`lethe inventory`, "
          "C16); a table's own `purpose` overrides it"},
  KeySpec{"pii.root", K::table, true,
          "the root table: one row per order"},
  KeySpec{"pii.root.table", K::string, true,
          "root table name, optionally schema-qualified"},
  KeySpec{"pii.root.key", K::columns, true,
          "unique, indexed key of the root table: a column, or a list of columns for a composite "
          "key, e.g. [\"region_code\", \"order_no\"]"},
  KeySpec{"pii.root.shipped_at", K::string, true,
          "timestamptz column: when the order shipped (NULL while not shipped)"},
  KeySpec{"pii.root.status", K::string, false,
          "order status column; required when never_shipped rules are given"},
  KeySpec{"pii.root.seller", K::string, false,
          "column holding the SellerId, for deletion requests scoped to a seller"},
  KeySpec{"pii.root.marketplace", K::string, false,
          "column holding the MarketplaceId, for requests scoped to a seller in one marketplace "
          "(needs pii.root.seller)"},
  KeySpec{"pii.root.buyer", K::string, false,
          "text column holding the buyer's identifier (e.g. the buyer email, maybe already "
          "pseudonymized by hmac), for requests scoped to a buyer"},
  KeySpec{"pii.root.never_shipped", K::table_array, false,
          "retention clocks for orders that never ship (cancelled, stuck in a status)"},
  KeySpec{"pii.root.never_shipped[].statuses", K::string_array, true,
          "status values this clock applies to (orders whose shipped_at is NULL)"},
  KeySpec{"pii.root.never_shipped[].since", K::string, true,
          "timestamptz column the clock starts from, e.g. the last update time"},
  KeySpec{"pii.root.never_shipped[].days", K::integer, true,
          "days until PII is due"},
  KeySpec{"pii.root.columns", K::table_array, true,
          "PII columns of the root table"},
  KeySpec{"pii.root.columns[].name", K::string, true,
          "column name"},
  KeySpec{"pii.root.columns[].strategy", K::string, true,
          "null (set NULL), constant (set `value`), hmac (keyed HMAC-SHA256, hex, prefixed "
          "'hmac:') or json (a json/jsonb column: take out the `remove` paths, pseudonymize the "
          "`hmac` paths)"},
  KeySpec{"pii.root.columns[].category", K::string, false,
          "what the column holds, for the record of processing (`lethe inventory`, C16): name, "
          "email, phone, address, postal_code, tax_id, company, region, buyer_identifier, "
          "free_text, document or other; `lethe config check` refuses a PII column without one"},
  KeySpec{"pii.root.columns[].value", K::string, false,
          "replacement value for constant"},
  KeySpec{"pii.root.columns[].remove", K::string_array, false,
          "json: paths taken out of the document, keys joined by dots, e.g. \"BuyerInfo\" or "
          "\"ShippingAddress.Phone\"; a JSON null or an absent key is left as it is"},
  KeySpec{"pii.root.columns[].hmac", K::string_array, false,
          "json: paths whose value becomes its hmac pseudonym (a string \"hmac:<64 hex>\"), "
          "e.g. \"BuyerInfo.BuyerEmail\"; never at or inside a removed path"},
  KeySpec{"pii.root.purpose", K::string, false,
          "why the order table's PII is processed (default pii.purpose)"},
  KeySpec{"pii.root.not_pii", K::string_array, false,
          "columns of the root table that hold no PII, declared for the schema drift check "
          "(`lethe check`): a text-like column the map neither names nor lists here is an alarm"},
  KeySpec{"pii.children", K::table_array, false,
          "tables holding PII that hang off the root"},
  KeySpec{"pii.children[].table", K::string, true,
          "child table name"},
  KeySpec{"pii.children[].parent", K::string, true,
          "the table this one links to: the root table or another child"},
  KeySpec{"pii.children[].link", K::columns, true,
          "column of this table that references the parent (a list, in the same order, for a "
          "composite parent key)"},
  KeySpec{"pii.children[].parent_column", K::columns, false,
          "referenced column (or list of columns) of the parent; default: the parent's key"},
  KeySpec{"pii.children[].strategy", K::string, false,
          "columns (sanitize the listed columns), delete-row (delete the whole row) or keep (Amazon "
          "Information that is not PII: left by the purge, erased with its order by a deletion "
          "request; lists no columns)",
          {}, {}, nullptr, "columns"},
  KeySpec{"pii.children[].key", K::columns, false,
          "unique not-null key column (or list of columns) that tells this table's rows apart (default: its primary "
          "key, else a unique not-null column); required when another child links to it"},
  KeySpec{"pii.children[].columns", K::table_array, false,
          "PII columns of this table"},
  KeySpec{"pii.children[].purpose", K::string, false,
          "why this table's PII is processed (default pii.purpose)"},
  KeySpec{"pii.children[].not_pii", K::string_array, false,
          "columns of this table that hold no PII (see pii.root.not_pii)"},
  KeySpec{"pii.children[].columns[].name", K::string, true,
          "column name"},
  KeySpec{"pii.children[].columns[].strategy", K::string, true,
          "null, constant, hmac or json"},
  KeySpec{"pii.children[].columns[].category", K::string, false,
          "what the column holds, for the record of processing (`lethe inventory`, C16): name, "
          "email, phone, address, postal_code, tax_id, company, region, buyer_identifier, "
          "free_text, document or other; `lethe config check` refuses a PII column without one"},
  KeySpec{"pii.children[].columns[].value", K::string, false,
          "replacement value for constant"},
  KeySpec{"pii.children[].columns[].remove", K::string_array, false,
          "json: paths taken out of the document (see pii.root.columns[].remove)"},
  KeySpec{"pii.children[].columns[].hmac", K::string_array, false,
          "json: paths replaced by their hmac pseudonym (see pii.root.columns[].hmac)"},

  KeySpec{"archive", K::table, false,
          "cold archives of held orders (C2, C7, C10)"},
  KeySpec{"archive.spool_dir", K::string, false,
          "directory (mode 0700) where archives are written; the operator's cold-storage process "
          "takes them from here",
          M(archive.spool_dir)},
  KeySpec{"archive.recipients", K::string_array, false,
          "public key files (RSA 3072/4096) archives are encrypted to; the private keys stay "
          "offline; empty: no archives are written and held orders wait",
          M(archive.recipients), {}, W(archive.recipients_where)},
  KeySpec{"archive.key_namespace", K::string, false,
          "raw RSA keyring namespace written into each archive",
          M(archive.key_namespace)},
  KeySpec{"archive.key_name", K::string, false,
          "raw RSA keyring key name written into each archive",
          M(archive.key_name)},
  KeySpec{"archive.member_mib", K::integer, false,
          "an archive member (part of one table's CSV) holds at most this many MiB, which bounds "
          "the memory the archive job uses",
          M(archive.member_mib), {1, 1024}},

  KeySpec{"hold", K::table, false,
          "regulatory hold (C2): rows that must be archived first"},
  KeySpec{"hold.predicate", K::string, false,
          "SQL boolean over the root table's columns (e.g. is_business_order); matching orders are "
          "archived before their PII is purged; empty: nothing is held",
          M(hold.predicate)},
  KeySpec{"hold.archive_years", K::integer, false,
          "years an archive of held orders is kept before `archive expire` destroys it",
          M(hold.archive_years), {1, 100}},

  KeySpec{"requests", K::table, false,
          "Amazon deletion requests (C5, C6, C19)"},
  KeySpec{"requests.max_orders", K::integer, false,
          "a request whose scope resolves to more orders stops for the operator to confirm the "
          "count (--confirm-count)",
          M(requests.max_orders), {1, 1000000000}},
  KeySpec{"requests.warn_hours", K::integer, false,
          "`lethe check` fails this many hours before a request's deadline",
          M(requests.warn_hours), {0, 2160}},
  KeySpec{"requests.ledger_file", K::string, false,
          "the deletion ledger's append-only, hash-chained file, outside the database: it "
          "outlives a restore of an old backup",
          M(requests.ledger_file)},
  KeySpec{"requests.held_orders", K::string, false,
          "orders under regulatory hold in a request's scope: archive-then-erase (the next "
          "`lethe archive run` archives them, then the request erases their live rows) or erase "
          "(erased at once, not archived)",
          M(requests.held_orders), {}, nullptr, {}, "archive-then-erase|erase"},
  KeySpec{"requests.return_dir", K::string, false,
          "directory (mode 0700) where a return request's data is written, encrypted to the "
          "public key given with --return-to, for the operator to hand to Amazon",
          M(requests.return_dir)},

  KeySpec{"backup", K::table, false,
          "encrypted backups (C3, C4, C6): pg_dump streamed through the encryption core"},
  KeySpec{"backup.spool_dir", K::string, false,
          "directory (mode 0700) where backups are written",
          M(backup.spool_dir)},
  KeySpec{"backup.recipients", K::string_array, false,
          "public key files (RSA 3072/4096) backups are encrypted to; the private key stays on "
          "the drill host; empty: `lethe backup run` refuses",
          M(backup.recipients), {}, W(backup.recipients_where)},
  KeySpec{"backup.key_namespace", K::string, false,
          "raw RSA keyring namespace written into each backup",
          M(backup.key_namespace)},
  KeySpec{"backup.key_name", K::string, false,
          "raw RSA keyring key name written into each backup",
          M(backup.key_name)},
  KeySpec{"backup.keep_days", K::integer, false,
          "days a backup is kept before `lethe backup expire` destroys it; with the two "
          "cadences below it must stay within the 90 days a deletion request allows",
          M(backup.keep_days), {1, 89}},
  KeySpec{"backup.interval_hours", K::integer, false,
          "hours between backups (the lethe-backup timer)",
          M(backup.interval_hours), {1, 720}},
  KeySpec{"backup.expire_hours", K::integer, false,
          "hours between runs of `lethe backup expire` (the lethe-backup timer runs it)",
          M(backup.expire_hours), {1, 720}},
  KeySpec{"backup.pg_dump", K::string, false,
          "the pg_dump program (a name on PATH or an absolute path)",
          M(backup.pg_dump)},
  KeySpec{"backup.pg_restore", K::string, false,
          "the pg_restore program, for drills, restores and `backup verify --read-data`",
          M(backup.pg_restore)},

  KeySpec{"drill", K::table, false,
          "restore drills (C4): a backup restored into a scratch database and checked"},
  KeySpec{"drill.dsn", K::string, false,
          "libpq connection string of the drill server's maintenance database (TLS verify-full, "
          "no password: database.password_file or the credential); empty: database.dsn's server, "
          "database postgres",
          M(drill.dsn)},
  KeySpec{"drill.keep_hours", K::integer, false,
          "hours the scratch database of a drill is kept for inspection; 0: dropped at once, "
          "also on failure",
          M(drill.keep_hours), {0, 168}},
  KeySpec{"drill.timeout_s", K::integer, false,
          "a drill that has not verified its restore after this many seconds is TIMED_OUT",
          M(drill.timeout_s), {10, 86400}},
  KeySpec{"drill.overdue_grace_hours", K::integer, false,
          "a drill fails when the backup held PII past its deadline by more than this many hours "
          "(the purge's cadence: what fell due since its last run is reported, not failed)",
          M(drill.overdue_grace_hours), {0, 168}},

  KeySpec{"metrics", K::table, false,
          "Prometheus metrics (C15) for node_exporter's textfile collector"},
  KeySpec{"metrics.textfile_dir", K::string, false,
          "directory every run writes lethe.prom into (and `lethe check` lethe-check.prom), each "
          "through a temporary file and a rename; node_exporter's "
          "--collector.textfile.directory; empty: no metrics are written",
          M(metrics.textfile_dir)},

  KeySpec{"alarms", K::table, false,
          "anomaly alarms (C15): each writes an alarm audit record, which opens an incident"},
  KeySpec{"alarms.volume_factor", K::number, false,
          "a run that processes more than this many times the median of its job's last 14 "
          "successful runs (orders; bytes for a backup) is an alarm (after 3 such runs)",
          M(alarms.volume_factor), {1, 1000}},
  KeySpec{"alarms.requests_per_day", K::integer, false,
          "more deletion requests registered in 24 hours than this is an alarm",
          M(alarms.requests_per_day), {1, 1000000}},
};
// clang-format on
#undef M
#undef W

} // namespace

std::span<const KeySpec> key_table() {
  return k_keys;
}

const KeySpec* find_key(std::string_view path) {
  for (const KeySpec& k : k_keys) {
    if (k.path == path) {
      return &k;
    }
  }
  return nullptr;
}

namespace {

std::string number_text(double v) {
  if (std::trunc(v) == v && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v)); // 1000000, not 1e+06
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::string("?");
}

} // namespace

std::string Range::text() const {
  if (min_open) {
    return "in (" + number_text(min) + ", " + number_text(max) + "]";
  }
  if (std::isinf(max)) {
    return "at least " + number_text(min);
  }
  return "between " + number_text(min) + " and " + number_text(max);
}

std::string default_text(const KeySpec& key) {
  Settings dflt;
  return std::visit(
      [&](auto bind) -> std::string {
        using B = decltype(bind);
        if constexpr (std::is_same_v<B, std::monostate>) {
          return std::string(key.unbound_default);
        } else {
          using V = std::remove_cvref_t<decltype(bind(dflt))>;
          const V& v = bind(dflt);
          if constexpr (std::is_same_v<V, long>) {
            return std::to_string(v);
          } else if constexpr (std::is_same_v<V, double>) {
            return number_text(v);
          } else if constexpr (std::is_same_v<V, std::filesystem::path>) {
            return v.string();
          } else if constexpr (std::is_same_v<V, std::string>) {
            return v;
          } else {
            std::string out;
            for (const std::string& e : v) {
              out += (out.empty() ? "" : ", ") + e;
            }
            return out;
          }
        }
      },
      key.bind);
}

std::string_view type_name(KeyType type) {
  switch (type) {
  case KeyType::table:
    return "table";
  case KeyType::table_array:
    return "array of tables";
  case KeyType::string:
    return "string";
  case KeyType::integer:
    return "integer";
  case KeyType::number:
    return "number";
  case KeyType::boolean:
    return "boolean";
  case KeyType::columns:
    return "column name or a non-empty array of column names";
  case KeyType::string_array:
    return "array of strings";
  }
  return "?";
}

} // namespace lethe::settings
