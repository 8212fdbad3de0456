#include "jobs/evidence/inventory.hpp"

#include "jobs/evidence/evidence.hpp"
#include "jobs/evidence/html.hpp"
#include "worker/db/store/evidence.hpp"
#include "worker/util/files.hpp"

#include <iostream>

namespace lethe::jobs::evidence {
namespace {

const char* strategy_name(settings::Strategy s) {
  switch (s) {
  case settings::Strategy::set_null:
    return "null";
  case settings::Strategy::constant:
    return "constant";
  case settings::Strategy::hmac:
    return "hmac";
  case settings::Strategy::json:
    return "json";
  }
  return "null";
}

std::string disposal(const settings::PiiTable& t, const settings::PiiColumn& c) {
  if (t.strategy == settings::TableStrategy::delete_row) {
    return "the row is deleted";
  }
  switch (c.strategy) {
  case settings::Strategy::set_null:
    return "set to NULL";
  case settings::Strategy::constant:
    return "replaced by a constant";
  case settings::Strategy::hmac:
    return "replaced by its keyed HMAC-SHA256 pseudonym";
  case settings::Strategy::json:
    return "the mapped paths taken out of the document or pseudonymized";
  }
  return "";
}

std::string retention_rule(const settings::Settings& s) {
  std::string out = std::to_string(s.retention.days) + " days after shipment";
  for (const settings::NeverShipped& n : s.root.never_shipped) {
    std::string statuses;
    for (const std::string& st : n.statuses) {
      statuses += (statuses.empty() ? "" : "/") + st;
    }
    out +=
        "; never shipped (" + statuses + "): " + std::to_string(n.days) + " days after " + n.since;
  }
  return out;
}

std::string roles_text(const util::Json& a) {
  std::string out;
  for (const auto& r : a) {
    out += (out.empty() ? "" : ", ") + r.get<std::string>();
  }
  return out.empty() ? "-" : out;
}

} // namespace

util::Json gather_inventory(Context& ctx) {
  const settings::Settings& s = ctx.settings();
  db::Session& session = ctx.ready_db();
  util::Json copies = db::store::copies_by_table(session, s);
  util::Json privs = db::store::privileges(session, s);
  util::Json tables = util::Json::array();
  std::vector<const settings::PiiTable*> pii = s.pii_tables();
  for (size_t i = 0; i < pii.size(); ++i) {
    const settings::PiiTable& t = *pii[i];
    const util::Json& tp = privs["tables"][i];
    util::Json cols = util::Json::array();
    for (const settings::PiiColumn& c : t.columns) {
      const util::Json& cp = tp["columns"][c.name];
      cols.push_back({{"column", c.name},
                      {"category", c.category},
                      {"strategy", strategy_name(c.strategy)},
                      {"disposal", disposal(t, c)},
                      {"roles_may_read", cp["select"]},
                      {"roles_may_change", cp["update"]}});
    }
    tables.push_back(
        {{"table", t.table},
         {"parent", t.parent},
         {"table_strategy",
          t.strategy == settings::TableStrategy::delete_row ? "delete-row" : "columns"},
         {"purpose", t.purpose},
         {"columns", cols},
         {"roles_may_delete_rows", tp["delete"]},
         {"copies", copies[i]}});
  }
  util::Json kept = util::Json::array();
  for (const settings::PiiTable* t : s.kept_tables()) {
    kept.push_back(t->table);
  }
  return {
      {"generated_at", session
                           .exec("SELECT to_char(now() AT TIME ZONE 'UTC', "
                                 "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
                           .text(0, 0)},
      {"pii_map_digest", settings::pii_map_digest(s)},
      {"retention", retention_rule(s)},
      {"hold", s.hold.predicate.empty()
                   ? std::string("none")
                   : "orders matching the hold predicate are archived first (cold, encrypted) "
                     "and their archives kept " +
                         std::to_string(s.hold.archive_years) + " years"},
      {"disposal",
       "live rows: by the nightly purge at the deadline, and erased with their order on an Amazon "
       "deletion request (72 hours); archives: destroyed after their retention (overwritten, "
       "unlinked); backups: destroyed after " +
           std::to_string(s.backup.keep_days) + " days"},
      {"superusers", privs["superusers"]},
      {"tables", tables},
      {"tables_without_pii", kept}};
}

std::string inventory_markdown(const util::Json& inv) {
  std::string o = "# Record of processing activities (lethe inventory)\n\n";
  o += "Generated " + inv["generated_at"].get<std::string>() + " from the PII map " +
       inv["pii_map_digest"].get<std::string>().substr(0, 12) + " and the live catalog.\n\n";
  o += "- Retention: " + inv["retention"].get<std::string>() + "\n";
  o += "- Regulatory hold: " + inv["hold"].get<std::string>() + "\n";
  o += "- Disposal: " + inv["disposal"].get<std::string>() + "\n";
  o += "- Superusers (every grant bypassed): " + roles_text(inv["superusers"]) + "\n";
  for (const auto& t : inv["tables"]) {
    const util::Json& c = t["copies"];
    o += "\n## " + t["table"].get<std::string>() + "\n\n";
    o += "Purpose: " + t["purpose"].get<std::string>() +
         ". Rows deleted by: " + roles_text(t["roles_may_delete_rows"]) + ".\n";
    o += "Copies: " + std::to_string(c["live_rows_with_pii"].get<long long>()) +
         " live rows with PII; " + std::to_string(c["spooled_archive_rows"].get<long long>()) +
         " rows in spooled and " + std::to_string(c["cold_archive_rows"].get<long long>()) +
         " in cold archives (" + std::to_string(c["archives"].get<long long>()) + " archives); " +
         std::to_string(c["backup_rows"].get<long long>()) + " rows in " +
         std::to_string(c["backups"].get<long long>()) + " backups.\n\n";
    o += "| column | category | strategy | disposal | roles that may read | roles that may change "
         "|\n|---|---|---|---|---|---|\n";
    for (const auto& col : t["columns"]) {
      o += "| " + col["column"].get<std::string>() + " | " + col["category"].get<std::string>() +
           " | " + col["strategy"].get<std::string>() + " | " + col["disposal"].get<std::string>() +
           " | " + roles_text(col["roles_may_read"]) + " | " + roles_text(col["roles_may_change"]) +
           " |\n";
    }
  }
  o += "\nTables the map declares without PII: " + roles_text(inv["tables_without_pii"]) + "\n";
  return o;
}

std::string inventory_html(const util::Json& inv) {
  using html::esc;
  std::string o =
      "<p>Generated " + esc(inv["generated_at"].get<std::string>()) + " from the PII map <code>" +
      esc(inv["pii_map_digest"].get<std::string>().substr(0, 12)) +
      "</code> and the live catalog.</p>\n<ul><li>Retention: " +
      esc(inv["retention"].get<std::string>()) +
      "</li><li>Regulatory hold: " + esc(inv["hold"].get<std::string>()) +
      "</li><li>Disposal: " + esc(inv["disposal"].get<std::string>()) +
      "</li><li>Superusers (every grant bypassed): " + esc(roles_text(inv["superusers"])) +
      "</li></ul>\n";
  for (const auto& t : inv["tables"]) {
    const util::Json& c = t["copies"];
    o += "<h3>" + esc(t["table"].get<std::string>()) +
         "</h3>\n<p>Purpose: " + esc(t["purpose"].get<std::string>()) +
         ". Rows deleted by: " + esc(roles_text(t["roles_may_delete_rows"])) +
         ".<br>Copies: " + html::number(c["live_rows_with_pii"].get<double>()) +
         " live rows with PII; " + html::number(c["spooled_archive_rows"].get<double>()) +
         " rows in spooled and " + html::number(c["cold_archive_rows"].get<double>()) +
         " in cold archives; " + html::number(c["backup_rows"].get<double>()) + " rows in " +
         html::number(c["backups"].get<double>()) + " backups.</p>\n";
    o += "<table><tr><th>column</th><th>category</th><th>strategy</th><th>disposal</th>"
         "<th>roles that may read</th><th>roles that may change</th></tr>\n";
    for (const auto& col : t["columns"]) {
      o += "<tr><td>" + esc(col["column"].get<std::string>()) + "</td><td>" +
           esc(col["category"].get<std::string>()) + "</td><td>" +
           esc(col["strategy"].get<std::string>()) + "</td><td>" +
           esc(col["disposal"].get<std::string>()) + "</td><td>" +
           esc(roles_text(col["roles_may_read"])) + "</td><td>" +
           esc(roles_text(col["roles_may_change"])) + "</td></tr>\n";
    }
    o += "</table>\n";
  }
  o += "<p>Tables the map declares without PII: " + esc(roles_text(inv["tables_without_pii"])) +
       "</p>\n";
  return o;
}

void emit(const std::string& out, const std::string& text) {
  if (out.empty()) {
    // Written whole or a failure: the report's digest is recorded only for what was written.
    std::cout << text << std::flush;
    if (!std::cout) {
      throw Error(Exit::io, "cannot write to standard output", "write to a file with --out FILE");
    }
    return;
  }
  util::write_file_atomically(out, text, 0640);
}

int run_inventory(Context& ctx, const InventoryOptions& opts) {
  if (opts.format != "md" && opts.format != "json" && opts.format != "html") {
    throw Error(Exit::usage, "--format must be md, json or html", "e.g. --format md");
  }
  settings::require_categories(ctx.settings());
  util::Json inv = gather_inventory(ctx);
  std::string text =
      opts.format == "json" ? util::dump(inv) + "\n"
      : opts.format == "md"
          ? inventory_markdown(inv)
          : html::page("Record of processing activities",
                       "<h1>Record of processing activities</h1>\n" + inventory_html(inv));
  emit(opts.out, text);
  return 0;
}

} // namespace lethe::jobs::evidence
