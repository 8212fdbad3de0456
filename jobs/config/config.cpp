#include "jobs/config/config.hpp"

#include "worker/crypto/keys.hpp"
#include "worker/db/catalog.hpp"
#include "worker/db/drift.hpp"
#include "worker/db/pii_sql.hpp"
#include "worker/log/log.hpp"
#include "worker/settings/keys.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <iostream>

namespace lethe::jobs::config {

namespace {

void check_keys(const std::vector<std::string>& files, const std::vector<std::string>& wheres,
                const std::string& key) {
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& file = files[i];
    std::string where = i < wheres.size() ? wheres[i] : "";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
      throw Error(Exit::config,
                  key + " names " + file + ", which is not a readable file" +
                      (ec ? ": " + ec.message() : ""),
                  "put the public key (`lethe keygen --out-public`) at that path, or fix the path",
                  where);
    }
    try {
      crypto::load_public_key(file);
    } catch (const Error& e) {
      throw Error(Exit::config, key + " names " + file + ": " + e.what(), e.hint(), where);
    }
  }
}

} // namespace

void check_files(const settings::Settings& s) {
  check_keys(s.archive.recipients, s.archive.recipients_where, "archive.recipients");
  check_keys(s.backup.recipients, s.backup.recipients_where, "backup.recipients");
}

int run_config_check(Context& ctx) {
  check_files(ctx.settings());
  db::CatalogReport rep = db::check_pii_map(ctx.ready_db(), ctx.settings());
  std::vector<std::string> uncategorized = settings::uncategorized_columns(ctx.settings());
  rep.problems.insert(rep.problems.end(), uncategorized.begin(), uncategorized.end());
  for (const std::string& w : rep.warnings) {
    log::event(log::Level::warning, "config.warning", {{"detail", w}});
  }
  std::string digest = settings::pii_map_digest(ctx.settings());
  if (!rep.problems.empty()) {
    ctx.record(audit::Record{audit::Kind::refusal, ctx.job(), "refused", "config_invalid",
                             std::nullopt, util::dump({{"problems", rep.problems.size()}}),
                             util::dump({{"pii_map_digest", digest}})});
    std::string msg = "configuration " + ctx.settings().source.string() +
                      " does not match the database (" + std::to_string(rep.problems.size()) +
                      (rep.problems.size() == 1 ? " problem)" : " problems)");
    for (const std::string& p : rep.problems) {
      msg += "\n  " + p;
    }
    throw Error(
        Exit::config, msg,
        uncategorized.size() == rep.problems.size()
            ? settings::categories_hint()
            : "fix the PII map to name existing tables and columns, then apply `lethe "
              "grants` as the database owner" +
                  std::string(uncategorized.empty() ? "" : "; " + settings::categories_hint()));
  }
  std::cout << "configuration " << ctx.settings().source.string() << " matches the database ("
            << ctx.settings().pii_tables().size() << " PII tables, map " << digest.substr(0, 12)
            << ", " << rep.warnings.size() << " warnings)\n";
  db::Session& session = ctx.ready_db();
  std::cout << db::describe(db::current_drift(session, ctx.settings()));
  return 0;
}

namespace {

// The drift items an approval records (everything but the missing approval itself); the
// unmentioned columns, which no approval covers, go to `unmentioned`.
util::Json approvable(const std::vector<db::DriftItem>& items,
                      std::vector<std::string>& unmentioned) {
  util::Json out = util::Json::array();
  for (const db::DriftItem& d : items) {
    if (d.kind == "unmentioned_column") {
      unmentioned.push_back(d.table + "." + d.column + " (" + d.detail + ")");
    } else if (d.kind != "not_approved") {
      out.push_back({{"kind", d.kind},
                     {"table", d.table},
                     {"column", d.column},
                     {"detail", d.detail},
                     {"pii_candidate", d.candidate}});
    }
  }
  return out;
}

[[noreturn]] void refuse_unmentioned(Context& ctx, const std::vector<std::string>& unmentioned) {
  std::string msg = std::to_string(unmentioned.size()) +
                    " columns of mapped tables can hold PII and the map does not say what they "
                    "hold; nothing approved:";
  for (const std::string& u : unmentioned) {
    msg += "\n  " + u;
  }
  ctx.record(audit::Record{audit::Kind::refusal, "config approve", "refused", "unmentioned",
                           std::nullopt, util::dump({{"columns", unmentioned.size()}}), "{}"});
  throw Error(Exit::config, msg,
              "an approval never covers such a column: map each with a strategy, or list it in "
              "its table's not_pii if it holds no PII, then approve again");
}

} // namespace

int run_config_approve(Context& ctx, const std::string& operator_name, const std::string& reason) {
  if (operator_name.empty() || reason.empty()) {
    throw Error(Exit::usage, "`lethe config approve` needs --operator NAME and --reason TEXT",
                "say who reviewed the schema and why (never PII); both go into the audit trail");
  }
  const settings::Settings& s = ctx.settings();
  db::Session& session = ctx.ready_db();
  if (size_t n = db::check_pii_map(session, s).problems.size(); n > 0) {
    throw Error(Exit::config,
                "the PII map does not match the database (" + std::to_string(n) +
                    " problems); nothing approved",
                "run `lethe config check`, fix the map, then approve");
  }
  db::SchemaFacts facts = db::read_schema_facts(session, s);
  std::vector<std::string> unmentioned;
  util::Json items = approvable(db::drift(s, facts, db::last_approval(session)), unmentioned);
  if (!unmentioned.empty()) {
    refuse_unmentioned(ctx, unmentioned);
  }
  size_t columns = 0;
  for (const db::TableFact& t : facts.tables) {
    columns += t.columns.size();
  }
  audit::Stored stored = ctx.trail().append(
      session,
      audit::Record{audit::Kind::manual, "config approve", "done", "approved", std::nullopt,
                    util::dump({{"tables", facts.tables.size()},
                                {"columns", columns},
                                {"items_approved", items.size()}}),
                    util::dump({{"reason", reason},
                                {"pii_map_digest", settings::pii_map_digest(s)},
                                {"items", items},
                                {"schema", db::to_json(facts)}})});
  for (const util::Json& a : items) {
    std::string col = a["column"].get<std::string>();
    std::cout << "approved: " << a["kind"].get<std::string>() << " "
              << a["table"].get<std::string>() << (col.empty() ? "" : "." + col) << "\n";
  }
  std::cout << "schema approved by " << operator_name << ": " << facts.tables.size() << " tables, "
            << columns << " columns (audit record " << stored.seq << ")\n";
  return 0;
}

int run_config_keys(bool json) {
  for (const settings::KeySpec& k : settings::key_table()) {
    if (json) {
      std::cout << util::dump({{"key", k.path},
                               {"type", settings::type_name(k.type)},
                               {"required", k.required},
                               {"default", settings::default_text(k)},
                               {"meaning", k.meaning}})
                << "\n";
    } else {
      std::cout << k.path << "  (" << settings::type_name(k.type)
                << (k.required ? ", required" : "")
                << (settings::default_text(k).empty() ? ""
                                                      : ", default " + settings::default_text(k))
                << ")\n    " << k.meaning << "\n";
    }
  }
  return 0;
}

int run_grants(const settings::Settings& s) {
  std::cout << db::grants_sql(s);
  return 0;
}

} // namespace lethe::jobs::config
