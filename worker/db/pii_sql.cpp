#include "worker/db/pii_sql.hpp"

#include "worker/db/session.hpp"

#include <algorithm>
#include <set>

namespace lethe::db {
namespace {

using settings::PiiTable;
using settings::Settings;
using settings::Strategy;
using settings::TableStrategy;

std::string join(const std::set<std::string>& items) {
  std::string out;
  for (const std::string& i : items) {
    out += (out.empty() ? "" : ", ") + quote_ident(i);
  }
  return out;
}

// The lethe.archives columns the archive job writes when it records an archive; state,
// evidence_seq, state_seq and destroyed_* change only through the migration-4 functions.
const std::set<std::string> k_archive_insert_columns{
    "archive_id",      "run_id",         "path",       "size_bytes", "sha256", "as_of",
    "retention_until", "pii_map_digest", "recipients", "row_counts", "orders", "last_seen_at"};

// Columns of `t` that a job may read: keys, links, clocks; never a PII column.
std::set<std::string> structural_columns(const Settings& s, const PiiTable& t) {
  std::set<std::string> cols(t.key.begin(), t.key.end());
  cols.insert(t.link.begin(), t.link.end());
  for (const PiiTable& c : s.children) {
    if (c.parent == t.table) {
      cols.insert(c.parent_column.begin(), c.parent_column.end());
    }
  }
  if (&t == &s.root.table) {
    cols.insert(s.root.shipped_at);
    if (!s.root.status.empty()) {
      cols.insert(s.root.status);
    }
    for (const auto& r : s.root.never_shipped) {
      cols.insert(r.since);
    }
  }
  return cols;
}

std::string role_setup(const std::string& role, const std::string& purpose) {
  return "-- " + role + ": " + purpose +
         "\n"
         "DO $$ BEGIN\n"
         "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = " +
         quote_literal(role) +
         ") THEN\n"
         "    CREATE ROLE " +
         quote_ident(role) +
         " LOGIN NOINHERIT;\n"
         "  END IF;\n"
         "EXCEPTION WHEN duplicate_object OR unique_violation THEN\n"
         "  NULL; -- created concurrently by another database's grants\n"
         "END $$;\n"
         "GRANT USAGE ON SCHEMA lethe TO " +
         quote_ident(role) +
         ";\n"
         "GRANT SELECT ON lethe.schema_version TO " +
         quote_ident(role) + ";\n";
}

// Where the identity of `t`'s rows comes from: the map's key (or the root's), or the catalog.
bool identity_from_catalog(const Settings& s, const PiiTable& t) {
  return &t != &s.root.table && t.key.empty() && t.strategy != TableStrategy::delete_row;
}

const std::string k_id_placeholder = "@lethe_row_identity@";

// A DO block that finds `t`'s identity column in the catalog, refuses without one, and runs
// `body` (SQL with k_id_placeholder for the column) with the column filled in.
std::string with_identity(const PiiTable& t, const std::string& body) {
  return "DO $lethe$ DECLARE id text; BEGIN\n  id := (" +
         row_identity_query("to_regclass(" + quote_literal(quote_ident(t.table)) + ")") +
         ");\n  IF id IS NULL THEN\n    RAISE EXCEPTION " +
         quote_literal(t.table + " has no primary key or unique not-null column") +
         " USING ERRCODE = 'invalid_table_definition', HINT = " +
         quote_literal("add a primary key (or a unique not-null column) to " + t.table +
                       ", or name it with `key` in the PII map") +
         ";\n  END IF;\n  EXECUTE replace(" + quote_literal(body) + ", " +
         quote_literal(k_id_placeholder) + ", quote_ident(id));\nEND $lethe$;\n";
}

std::string schema_of(const std::string& table) {
  auto dot = table.find('.');
  return dot == std::string::npos ? "public" : table.substr(0, dot);
}

} // namespace

namespace {

std::string lethe_view(const std::string& prefix, const std::string& table) {
  std::string name = prefix;
  for (char c : table) {
    name += c == '.' ? '_' : c;
  }
  return "lethe." + quote_ident(name);
}

} // namespace

std::string state_view(const std::string& table) {
  return lethe_view("pii_state_", table);
}

std::string due_view(const std::string& table) {
  return lethe_view("pii_due_", table);
}

std::string has_pii_expr(const PiiTable& t) {
  if (t.strategy == TableStrategy::delete_row) {
    return "true";
  }
  std::string out;
  for (const settings::PiiColumn& c : t.columns) {
    std::string col = quote_ident(c.name);
    std::string e;
    switch (c.strategy) {
    case Strategy::set_null:
      e = col + " IS NOT NULL";
      break;
    case Strategy::constant:
      // A NULL holds no PII and stays NULL.
      e = "(" + col + " IS NOT NULL AND " + col + " <> " + quote_literal(c.value) + ")";
      break;
    case Strategy::hmac:
      e = "(" + col + " IS NOT NULL AND NOT " + is_pseudonym_sql(col) + ")";
      break;
    case Strategy::json: {
      std::string doc = col + "::jsonb";
      for (const settings::JsonPath& p : c.remove) {
        e += (e.empty() ? "" : " OR ") + json_holds_sql(doc, p);
      }
      for (const settings::JsonPath& p : c.hmac) {
        e += (e.empty() ? "" : " OR ") + json_needs_hmac_sql(doc, p);
      }
      e = "(" + col + " IS NOT NULL AND (" + e + "))";
      break;
    }
    }
    out += (out.empty() ? "" : " OR ") + e;
  }
  return out.empty() ? "false" : "(" + out + ")";
}

std::string due_at_expr(const Settings& s) {
  std::string out = "CASE WHEN " + quote_ident(s.root.shipped_at) + " IS NOT NULL THEN " +
                    quote_ident(s.root.shipped_at) + " + interval '" +
                    std::to_string(s.retention.days) + " days'";
  for (const auto& r : s.root.never_shipped) {
    std::string statuses;
    for (const std::string& st : r.statuses) {
      statuses += (statuses.empty() ? "" : ", ") + quote_literal(st);
    }
    out += " WHEN " + quote_ident(s.root.status) + " IN (" + statuses + ") THEN " +
           quote_ident(r.since) + " + interval '" + std::to_string(r.days) + " days'";
  }
  return out + " END";
}

std::string select_list(const std::string& alias, const settings::Columns& cols) {
  std::string out;
  for (const std::string& c : cols) {
    out += (out.empty() ? "" : ", ") + alias + "." + quote_ident(c);
  }
  return out;
}

std::string columns_sql(const std::string& alias, const settings::Columns& cols) {
  std::string list = select_list(alias, cols);
  return cols.size() == 1 ? list : "(" + list + ")";
}

std::string is_pseudonym_sql(const std::string& value) {
  return "(octet_length(" + value + ") = 69 AND " + value + " ~ '^hmac:[0-9a-f]+$')";
}

std::string hmac_hex_sql(const std::string& value, const std::string& pads) {
  return "encode(sha256(" + pads + ".opad || sha256(" + pads + ".ipad || convert_to(" + value +
         ", 'UTF8'))), 'hex')";
}

std::string key_text_sql(const std::string& alias, const settings::Columns& cols) {
  if (cols.size() == 1) {
    return alias + "." + quote_ident(cols[0]) + "::text";
  }
  std::string out;
  for (const std::string& c : cols) {
    out += (out.empty() ? "" : ", ") + alias + "." + quote_ident(c) + "::text";
  }
  return "json_build_array(" + out + ")::text";
}

std::string columns_equal(const std::string& a, const settings::Columns& ca, const std::string& b,
                          const settings::Columns& cb) {
  std::string out;
  for (size_t i = 0; i < ca.size() && i < cb.size(); ++i) {
    out += (out.empty() ? "" : " AND ") + a + "." + quote_ident(ca[i]) + " = " + b + "." +
           quote_ident(cb[i]);
  }
  return out;
}

std::string rows_of_orders(const Settings& s, const PiiTable& t, const std::string& alias,
                           const std::function<std::string(const std::string&)>& match,
                           ParentLookup lookup) {
  if (&t == &s.root.table) {
    return match(columns_sql(alias, t.key));
  }
  const PiiTable* parent = s.find_table(t.parent);
  if (parent == &s.root.table) {
    return match(columns_sql(alias, t.link));
  }
  std::string a = alias + "p";
  std::string parents = select_list(a, t.parent_column) + " FROM " + quote_ident(parent->table) +
                        " " + a + " WHERE " + rows_of_orders(s, *parent, a, match, lookup);
  if (lookup == ParentLookup::array && t.link.size() == 1) {
    // In a batch, as `IN (SELECT …)` with hash and merge joins off, the planner read the
    // parent's whole primary key to make the values unique (13 ms a batch against 6).
    return columns_sql(alias, t.link) + " = ANY(ARRAY(SELECT " + parents + "))";
  }
  return columns_sql(alias, t.link) + " IN (SELECT " + parents + ")";
}

std::string state_path_to_root(const Settings& s, const PiiTable& t) {
  if (&t == &s.root.table) {
    return state_view(t.table) + " r";
  }
  std::string from = state_view(t.table) + " c0";
  const PiiTable* cur = &t;
  int depth = 0;
  while (cur != &s.root.table) {
    const PiiTable* parent = s.find_table(cur->parent);
    std::string alias = parent == &s.root.table ? "r" : "c" + std::to_string(depth + 1);
    from += " JOIN " + state_view(parent->table) + " " + alias + " ON " +
            columns_equal("c" + std::to_string(depth), cur->link, alias, cur->parent_column);
    cur = parent;
    ++depth;
  }
  return from;
}

namespace {

// held: under regulatory hold and in no archive yet. An archived order is no longer held back,
// so the purge sanitizes it like any other. Archived means listed by an archive whose catalog
// row has its archive_written evidence (only lethe.archive_orders writes both); a destroyed
// archive still counts: its orders were sanitized before it was.
std::string held_expr(const Settings& s, const PiiTable& root) {
  if (s.hold.predicate.empty()) {
    return "false";
  }
  return "(coalesce((" + s.hold.predicate +
         "), false) AND NOT EXISTS (SELECT 1 FROM lethe.archived_orders a JOIN lethe.archives c "
         "ON c.archive_id = a.archive_id AND c.evidence_seq IS NOT NULL WHERE a.order_key = " +
         key_text_sql(quote_ident(root.table), root.key) + "))";
}

// SQL boolean over `t`'s own row (inside its view): its order's PII is due now and not held.
// The due-values view shows hmac values only then, so the purge reads no PII it is not about to
// pseudonymize (a run's --as-of is never in the future, so what it takes is due now too).
std::string due_now(const Settings& s, const PiiTable& t) {
  if (&t == &s.root.table) {
    return "(" + due_at_expr(s) + " <= now() AND NOT " + held_expr(s, t) + ")";
  }
  const PiiTable* parent = s.find_table(t.parent);
  std::string alias = parent == &s.root.table ? "r" : "c0";
  return "EXISTS (SELECT 1 FROM " + state_path_to_root(s, *parent) + " WHERE " +
         columns_equal(quote_ident(t.table), t.link, alias, t.parent_column) +
         " AND r.due_at <= now() AND NOT r.held)";
}

// ",\n <id> AS lethe_row_id" of a view of `t`: the map's one-column key, or the catalog's
// identity column (k_id_placeholder, filled in by with_identity when the script runs). A
// composite key has none: it is matched by its own columns, which the views already show.
std::string row_id_column(const Settings& s, const PiiTable& t) {
  if (identity_from_catalog(s, t)) {
    return std::string(",\n         ") + k_id_placeholder + " AS " + k_row_id;
  }
  if (t.key.size() == 1) {
    return ",\n         " + quote_ident(t.key[0]) + " AS " + k_row_id;
  }
  return {};
}

std::string view_sql(const Settings& s, const PiiTable& t) {
  std::string out = "CREATE OR REPLACE VIEW " + state_view(t.table) + " AS\n  SELECT " +
                    join(structural_columns(s, t));
  if (&t == &s.root.table) {
    out += ",\n         " + due_at_expr(s) + " AS due_at";
    out += ",\n         " + held_expr(s, t) + " AS held";
  }
  out += ",\n         " + has_pii_expr(t) + " AS has_pii";
  // Appended after the older columns, so CREATE OR REPLACE VIEW keeps working on old views.
  if (t.strategy != TableStrategy::delete_row) {
    out += row_id_column(s, t);
    for (size_t i = 0; i < t.columns.size(); ++i) {
      out += ",\n         " + quote_ident(t.columns[i].name) + " IS NULL AS " + null_flag(i);
    }
  }
  return out + "\n  FROM " + quote_ident(t.table) + ";\n";
}

// The due-values view of a table with hmac columns: its rows whose order is due now and not
// held, with their identity, structure, hmac values and the state view's flags; nothing of any
// other order.
std::string due_view_sql(const Settings& s, const PiiTable& t) {
  std::string out = "CREATE OR REPLACE VIEW " + due_view(t.table) + " AS\n  SELECT " +
                    join(structural_columns(s, t));
  out += row_id_column(s, t);
  for (size_t i = 0; i < t.columns.size(); ++i) {
    if (t.columns[i].strategy == Strategy::hmac) {
      out += ",\n         " + quote_ident(t.columns[i].name) + "::text AS " + hmac_value(i);
    } else if (t.columns[i].strategy == Strategy::json) {
      out += ",\n         " + quote_ident(t.columns[i].name) + "::jsonb AS " + json_value(i);
    }
  }
  // Generation 4: the state view's flags too, so the purge's UPDATE reads one view.
  out += ",\n         " + has_pii_expr(t) + " AS has_pii";
  for (size_t i = 0; i < t.columns.size(); ++i) {
    out += ",\n         " + quote_ident(t.columns[i].name) + " IS NULL AS " + null_flag(i);
  }
  return out + "\n  FROM " + quote_ident(t.table) + "\n  WHERE " + due_now(s, t) + ";\n";
}
// What a job role may do with run records (schema 5): begin a run (its outcome starts as
// 'running'), read, and close or add progress only through the definer functions.
std::string run_grants(const std::string& role) {
  std::string r = quote_ident(role);
  return "REVOKE ALL ON lethe.job_runs, lethe.run_progress FROM " + r +
         ";\nGRANT SELECT, INSERT (job, actor, os_user, unit, lethe_version, pii_map_digest, "
         "options, backend_pid, backend_start) ON lethe.job_runs TO " +
         r + ";\nGRANT SELECT ON lethe.run_progress TO " + r +
         ";\nGRANT EXECUTE ON FUNCTION lethe.close_run(bigint, bigint), "
         "lethe.add_run_progress(bigint, integer, text[], bigint[]), lethe.metrics(), "
         "lethe.run_volume_baseline(bigint, text) TO " +
         r + ";\n";
}

} // namespace

bool has_due_view(const PiiTable& t) {
  return std::any_of(t.columns.begin(), t.columns.end(), [](const settings::PiiColumn& c) {
    return c.strategy == Strategy::hmac || c.strategy == Strategy::json;
  });
}

bool uses_hmac_key(const PiiTable& t) {
  return std::any_of(t.columns.begin(), t.columns.end(), [](const settings::PiiColumn& c) {
    return c.strategy == Strategy::hmac || !c.hmac.empty();
  });
}

std::string json_value(size_t index) {
  return "lethe_json_" + std::to_string(index);
}

std::string json_path_sql(const settings::JsonPath& path) {
  std::string out;
  for (const std::string& k : path) {
    out += (out.empty() ? "" : ", ") + quote_literal(k);
  }
  return "ARRAY[" + out + "]::text[]";
}

std::string json_holds_sql(const std::string& doc, const settings::JsonPath& path) {
  return "coalesce((" + doc + " #> " + json_path_sql(path) + ") <> 'null'::jsonb, false)";
}

std::string json_needs_hmac_sql(const std::string& doc, const settings::JsonPath& path) {
  std::string v = "(" + doc + " #> " + json_path_sql(path) + ")";
  return "coalesce(" + v + " <> 'null'::jsonb AND NOT (jsonb_typeof(" + v + ") = 'string' AND " +
         is_pseudonym_sql("(" + doc + " #>> " + json_path_sql(path) + ")") + "), false)";
}

std::string null_flag(size_t index) {
  return "lethe_null_" + std::to_string(index);
}

std::string hmac_value(size_t index) {
  return "lethe_hmac_" + std::to_string(index);
}

std::string row_identity_query(const std::string& regclass_sql) {
  return "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
         "AND a.attnum = i.indkey[0] WHERE i.indrelid = " +
         regclass_sql +
         " AND i.indisunique AND i.indnkeyatts = 1 AND i.indnatts = 1 AND i.indpred IS NULL "
         "AND i.indexprs IS NULL AND i.indisvalid AND a.attnotnull "
         "ORDER BY i.indisprimary DESC, a.attnum LIMIT 1";
}

std::string view_comment(const Settings& s) {
  return "lethe pii-map " + settings::pii_map_digest(s) + " (state views 4)";
}

std::string state_views_sql(const Settings& s) {
  std::string out;
  for (const PiiTable* t : s.pii_tables()) {
    std::string view = view_sql(s, *t);
    std::string comment =
        "COMMENT ON VIEW " + state_view(t->table) + " IS " + quote_literal(view_comment(s)) + ";\n";
    if (has_due_view(*t)) {
      view += due_view_sql(s, *t);
      comment +=
          "COMMENT ON VIEW " + due_view(t->table) + " IS " + quote_literal(view_comment(s)) + ";\n";
    }
    out += (identity_from_catalog(s, *t) ? with_identity(*t, view) : view) + comment;
  }
  return out;
}

namespace {

std::string usage_on(const std::set<std::string>& schemas, const std::string& role) {
  std::string out;
  for (const std::string& sc : schemas) {
    out += "GRANT USAGE ON SCHEMA " + quote_ident(sc) + " TO " + quote_ident(role) + ";\n";
  }
  return out;
}

// The purge job: reads keys and clocks (hmac values only through the due-values views), updates
// PII columns, deletes delete-row tables.
std::string purge_grants(const Settings& s, const std::set<std::string>& schemas) {
  const std::string purge = "lethe_purge";
  std::string out = role_setup(purge, "nightly purge (C1)") + usage_on(schemas, purge);
  for (const PiiTable* t : s.pii_tables()) {
    std::set<std::string> writable;
    for (const settings::PiiColumn& c : t->columns) {
      writable.insert(c.name);
    }
    out += "GRANT SELECT (" + join(structural_columns(s, *t)) + ") ON " + quote_ident(t->table) +
           " TO " + quote_ident(purge) + ";\n";
    if (identity_from_catalog(s, *t)) {
      // The purge matches rows by their identity column, found when the script runs.
      out += with_identity(*t, "GRANT SELECT (" + k_id_placeholder + ") ON " +
                                   quote_ident(t->table) + " TO " + quote_ident(purge));
    }
    if (t->strategy == TableStrategy::delete_row) {
      out += "GRANT DELETE ON " + quote_ident(t->table) + " TO " + quote_ident(purge) + ";\n";
    } else if (!writable.empty()) {
      out += "GRANT UPDATE (" + join(writable) + ") ON " + quote_ident(t->table) + " TO " +
             quote_ident(purge) + ";\n";
    }
    out += "GRANT SELECT ON " + state_view(t->table) + " TO " + quote_ident(purge) + ";\n";
    if (has_due_view(*t)) {
      out += "GRANT SELECT ON " + due_view(t->table) + " TO " + quote_ident(purge) + ";\n";
    }
  }
  out += "GRANT SELECT, INSERT ON lethe.audit_log TO " + quote_ident(purge) + ";\n";
  out += run_grants(purge);
  out += "GRANT USAGE ON SEQUENCE lethe.job_runs_run_id_seq TO " + quote_ident(purge) + ";\n";
  std::vector<const PiiTable*> tables = s.pii_tables();
  if (std::any_of(tables.begin(), tables.end(),
                  [](const PiiTable* t) { return uses_hmac_key(*t); })) {
    // The engine computes hmac values in the database from the key pads it puts in a
    // temporary table of its own session (sanitize::TableStep::hmac).
    out += "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO lethe_purge', "
           "current_database()); END $$;\n";
  }
  return out + "\n";
}

// The archive job: reads the held orders whole (they go into the encrypted archive), records
// archives, then sanitizes the archived orders like the purge.
std::string archive_grants(const Settings& s, const std::set<std::string>& schemas) {
  const std::string archive = "lethe_archive";
  std::string out =
      role_setup(archive, "daily cold archive of held orders (C2); reads PII to archive it");
  // Schema 2 granted lethe_archive UPDATE on all of lethe.archives and INSERT on
  // lethe.archived_orders; GRANT only adds, so an upgraded database keeps them unless revoked.
  // Nothing else in this script grants on these two tables.
  out += "REVOKE ALL ON lethe.archives, lethe.archived_orders FROM " + quote_ident("lethe_purge") +
         ", " + quote_ident(archive) + ";\n";
  out += usage_on(schemas, archive);
  for (const PiiTable* t : s.pii_tables()) {
    std::set<std::string> writable;
    for (const settings::PiiColumn& c : t->columns) {
      writable.insert(c.name);
    }
    out += "GRANT SELECT ON " + quote_ident(t->table) + " TO " + quote_ident(archive) + ";\n";
    if (t->strategy == TableStrategy::delete_row) {
      out += "GRANT DELETE ON " + quote_ident(t->table) + " TO " + quote_ident(archive) + ";\n";
    } else if (!writable.empty()) {
      out += "GRANT UPDATE (" + join(writable) + ") ON " + quote_ident(t->table) + " TO " +
             quote_ident(archive) + ";\n";
    }
    out += "GRANT SELECT ON " + state_view(t->table) + " TO " + quote_ident(archive) + ";\n";
    if (has_due_view(*t)) {
      out += "GRANT SELECT ON " + due_view(t->table) + " TO " + quote_ident(archive) + ";\n";
    }
  }
  out += "GRANT SELECT, INSERT ON lethe.audit_log TO " + quote_ident(archive) + ";\n";
  out += run_grants(archive);
  // The catalog is evidence (decision 10): the job inserts a row, but its orders and its state
  // go only through the definer functions of migration 4, which require the audit record.
  out += "GRANT SELECT, INSERT (" + join(k_archive_insert_columns) + ") ON lethe.archives TO " +
         quote_ident(archive) + ";\n";
  out += "GRANT UPDATE (last_seen_at) ON lethe.archives TO " + quote_ident(archive) + ";\n";
  out += "GRANT SELECT ON lethe.archived_orders TO " + quote_ident(archive) + ";\n";
  // Held orders a deletion request names are archived before the request erases them.
  out += "GRANT SELECT ON lethe.requests, lethe.request_orders TO " + quote_ident(archive) + ";\n";
  out += "GRANT EXECUTE ON FUNCTION lethe.archive_orders(text, bigint, text[]), "
         "lethe.archive_set_state(text, text, bigint) TO " +
         quote_ident(archive) + ";\n";
  out += "GRANT USAGE ON SEQUENCE lethe.job_runs_run_id_seq TO " + quote_ident(archive) + ";\n";
  out += "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO lethe_archive', "
         "current_database()); END $$;\n\n";
  return out;
}

// The deletion-request job: reads whole rows of every mapped table (to resolve a scope on the
// root's identifier columns, and to write a return request's data for Amazon) and deletes them
// (keep tables included): it reads only the orders it erases. Keeps the request tables and the
// deletion ledger.
std::string request_grants(const Settings& s, const std::set<std::string>& schemas) {
  const std::string role = "lethe_request";
  const std::string r = quote_ident(role);
  std::string out = role_setup(role, "Amazon deletion requests (C5, C6, C19); erases the orders "
                                     "a request names, all mapped tables") +
                    usage_on(schemas, role);
  std::vector<const PiiTable*> tables = s.pii_tables();
  std::vector<const PiiTable*> kept = s.kept_tables();
  tables.insert(tables.end(), kept.begin(), kept.end());
  for (const PiiTable* t : tables) {
    out += "GRANT SELECT, DELETE ON " + quote_ident(t->table) + " TO " + r + ";\n";
    if (t->strategy != TableStrategy::keep) {
      out += "GRANT SELECT ON " + state_view(t->table) + " TO " + r + ";\n";
    }
  }
  out += "GRANT SELECT, INSERT ON lethe.audit_log TO " + r + ";\n";
  out += run_grants(role);
  out += "GRANT USAGE ON SEQUENCE lethe.job_runs_run_id_seq, lethe.requests_request_id_seq TO " +
         r + ";\n";
  out += "GRANT SELECT, INSERT, UPDATE ON lethe.requests TO " + r + ";\n";
  out += "GRANT SELECT, INSERT, DELETE ON lethe.request_orders TO " + r + ";\n";
  out += "GRANT SELECT, INSERT, UPDATE (destroyed_at, destroyed_by) ON lethe.request_copies TO " +
         r + ";\n";
  out += "GRANT SELECT, INSERT ON lethe.request_runs, lethe.deletion_ledger TO " + r + ";\n";
  out += "GRANT SELECT ON lethe.copies, lethe.copy_orders TO " + r + ";\n";
  // A buyer's email reaches the server only through COPY into a temporary table.
  out += "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO lethe_request', "
         "current_database()); END $$;\n\n";
  return out;
}

// The backup job: reads every table (pg_dump; membership in PostgreSQL's pg_read_all_data,
// inherited), inserts its marker, catalogs its backups and destroys expired ones through
// lethe.backup_set_state.
std::string backup_grants() {
  const std::string role = "lethe_backup";
  const std::string r = quote_ident(role);
  std::string out = role_setup(role, "encrypted backups (C3, C4); reads every table to dump it");
  // Roles are the cluster's: another database's grants may change the same role at the same
  // moment, so each change is made only when missing.
  out += "DO $$ BEGIN\n"
         "  IF NOT (SELECT rolinherit FROM pg_roles WHERE rolname = 'lethe_backup') THEN\n"
         "    ALTER ROLE lethe_backup INHERIT;\n"
         "  END IF;\n"
         "  IF NOT pg_has_role('lethe_backup', 'pg_read_all_data', 'MEMBER') THEN\n"
         "    GRANT pg_read_all_data TO lethe_backup;\n"
         "  END IF;\n"
         "EXCEPTION WHEN internal_error OR unique_violation THEN\n"
         "  NULL; -- changed concurrently by another database's grants\n"
         "END $$;\n";
  out += "GRANT SELECT, INSERT ON lethe.audit_log TO " + r + ";\n";
  out += run_grants(role);
  out += "GRANT USAGE ON SEQUENCE lethe.job_runs_run_id_seq TO " + r + ";\n";
  out += "GRANT SELECT, INSERT ON lethe.backup_markers TO " + r + ";\n";
  out += "GRANT SELECT, INSERT ON lethe.backups TO " + r + ";\n";
  out += "GRANT EXECUTE ON FUNCTION lethe.backup_set_state(text, text, bigint) TO " + r + ";\n\n";
  return out;
}

// Restore drills: read the backup catalog and record drills here; on the drill server the role
// creates, owns and drops its scratch databases (CREATEDB), and reads nothing else here.
std::string drill_grants() {
  const std::string role = "lethe_drill";
  const std::string r = quote_ident(role);
  std::string out = role_setup(role, "restore drills (C4); creates its scratch databases");
  // The owner of its scratch databases (made only when missing, as for lethe_backup).
  out += "DO $$ BEGIN\n"
         "  IF NOT (SELECT rolcreatedb AND rolinherit FROM pg_roles WHERE rolname = "
         "'lethe_drill') THEN\n"
         "    ALTER ROLE lethe_drill CREATEDB INHERIT;\n"
         "  END IF;\n"
         "EXCEPTION WHEN internal_error THEN\n"
         "  NULL; -- changed concurrently by another database's grants\n"
         "END $$;\n";
  out += "GRANT SELECT, INSERT ON lethe.audit_log TO " + r + ";\n";
  out += run_grants(role);
  out += "GRANT USAGE ON SEQUENCE lethe.job_runs_run_id_seq, lethe.drills_drill_id_seq TO " + r +
         ";\n";
  out += "GRANT SELECT ON lethe.backups TO " + r + ";\n";
  out += "GRANT SELECT, INSERT ON lethe.drills TO " + r + ";\n";
  // The ledger replay of a drill reads which erases happened (keyed HMACs, no identifier).
  out += "GRANT SELECT ON lethe.deletion_ledger TO " + r + ";\n\n";
  return out;
}

// The monitor: `lethe check` and `lethe audit verify`; reads state views and the audit trail.
std::string monitor_grants(const Settings& s) {
  const std::string monitor = "lethe_monitor";
  std::string out = role_setup(monitor, "`lethe check` and `lethe audit verify` (reads no PII)");
  out += "REVOKE ALL ON lethe.archives, lethe.archived_orders FROM " + quote_ident(monitor) + ";\n";
  // It records each audit verify's result (an alarm when broken) and writes the metrics.
  out += "GRANT SELECT, INSERT ON lethe.audit_log TO " + quote_ident(monitor) + ";\n";
  out += "GRANT EXECUTE ON FUNCTION lethe.metrics() TO " + quote_ident(monitor) + ";\n";
  // `lethe check` fails on an incident whose 24-hour notice is overdue.
  out += "GRANT SELECT ON lethe.incidents, lethe.incident_notes TO " + quote_ident(monitor) + ";\n";
  // Each check as of now leaves its counts: PII past its deadline over time (`lethe report`).
  out += "GRANT SELECT, INSERT ON lethe.overdue_samples TO " + quote_ident(monitor) + ";\n";
  // Requests hold no identifier in clear (HMACs only); the monitor watches their deadlines.
  out += "GRANT SELECT ON lethe.requests TO " + quote_ident(monitor) + ";\n";
  for (const PiiTable* t : s.pii_tables()) {
    out += "GRANT SELECT ON " + state_view(t->table) + " TO " + quote_ident(monitor) + ";\n";
  }
  return out;
}

} // namespace

std::string grants_sql(const Settings& s) {
  std::string out =
      "-- Least-privilege roles for lethe (C11), generated by `lethe grants` from the PII map\n"
      "-- " +
      settings::pii_map_digest(s) +
      ". Run as the owner of the order tables after `lethe migrate`:\n"
      "--   psql \"$ADMIN_DSN\" -v ON_ERROR_STOP=1 -f grants.sql\n"
      "-- then give each role a password (\\password lethe_purge) or a client certificate.\n"
      "BEGIN;\n\n-- State views: which rows still hold PII and when they fall due, no PII "
      "values.\n";
  out += state_views_sql(s) + "\n";
  std::set<std::string> schemas{"lethe"};
  for (const PiiTable* t : s.pii_tables()) {
    schemas.insert(schema_of(t->table));
  }
  out += purge_grants(s, schemas) + archive_grants(s, schemas) + request_grants(s, schemas) +
         backup_grants() + drill_grants() + monitor_grants(s);
  return out + "\nCOMMIT;\n";
}

} // namespace lethe::db
