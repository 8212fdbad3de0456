#include "jobs/config/config.hpp"

#include "worker/crypto/keys.hpp"
#include "worker/db/catalog.hpp"
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
    throw Error(Exit::config, msg,
                "fix the PII map to name existing tables and columns, then apply `lethe grants` "
                "as the database owner");
  }
  std::cout << "configuration " << ctx.settings().source.string() << " matches the database ("
            << ctx.settings().pii_tables().size() << " PII tables, map " << digest.substr(0, 12)
            << ", " << rep.warnings.size() << " warnings)\n";
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
