#include "worker/db/migrations.hpp"

namespace lethe::db {
namespace {

constexpr const char* k_lock = "SELECT pg_advisory_xact_lock(hashtext('lethe.migrate'))";

constexpr const char* k_bootstrap = R"sql(
CREATE SCHEMA IF NOT EXISTS lethe;
CREATE TABLE IF NOT EXISTS lethe.schema_version (
  version       integer     PRIMARY KEY,
  name          text        NOT NULL,
  applied_at    timestamptz NOT NULL DEFAULT now(),
  lethe_version text        NOT NULL
);
)sql";

int current_version(Transaction& tx) {
  Rows r = tx.exec("SELECT coalesce(max(version), 0) FROM lethe.schema_version");
  return static_cast<int>(r.integer(0, 0));
}

[[noreturn]] void refuse_newer(int found) {
  throw Error(Exit::config,
              "lethe's schema in this database is version " + std::to_string(found) +
                  ", newer than this binary knows (" + std::to_string(known_schema_version()) + ")",
              "install the lethe release that migrated this database, or a newer one");
}

} // namespace

int known_schema_version() {
  const auto& all = embedded_migrations();
  return all.empty() ? 0 : all.back().version;
}

int schema_version(Session& session) {
  Rows r = session.exec("SELECT to_regclass('lethe.schema_version') IS NOT NULL");
  if (r.text(0, 0) != "t") {
    return 0;
  }
  r = session.exec("SELECT coalesce(max(version), 0) FROM lethe.schema_version");
  return static_cast<int>(r.integer(0, 0));
}

MigrateOutcome migrate(Session& session) {
  MigrateOutcome out;
  session.transact([&](Transaction& tx) {
    tx.exec(k_lock);
    tx.exec(k_bootstrap);
    out.from = current_version(tx);
  });
  if (out.from > known_schema_version()) {
    refuse_newer(out.from);
  }
  for (const Migration& m : embedded_migrations()) {
    bool applied = false;
    session.transact([&](Transaction& tx) {
      tx.exec(k_lock);
      int now = current_version(tx);
      if (now >= m.version) {
        return;
      }
      if (now != m.version - 1) {
        throw Error(Exit::internal, "migration " + std::to_string(m.version) + " follows version " +
                                        std::to_string(now) + ", not " +
                                        std::to_string(m.version - 1));
      }
      tx.exec(m.sql);
      tx.exec("INSERT INTO lethe.schema_version (version, name, lethe_version) VALUES ($1, $2, $3)",
              {std::to_string(m.version), std::string(m.name), std::string(LETHE_VERSION)});
      applied = true;
    });
    if (applied) {
      out.applied.push_back(m.version);
    }
  }
  out.to = schema_version(session);
  return out;
}

void require_current_schema(Session& session) {
  int found = schema_version(session);
  if (found > known_schema_version()) {
    refuse_newer(found);
  }
  if (found < known_schema_version()) {
    throw Error(Exit::config,
                "lethe's schema in this database is version " + std::to_string(found) +
                    ", this binary needs " + std::to_string(known_schema_version()),
                "run `lethe migrate` as the database owner");
  }
}

} // namespace lethe::db
