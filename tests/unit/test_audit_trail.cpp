#include "worker/audit/trail.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

TEST_CASE("chain_hash: every field and the previous hash are covered") {
  audit::Stored s;
  s.seq = 1;
  s.recorded_at = "2026-11-22T00:00:00.000000Z";
  s.record = audit::Record{audit::Kind::run, "purge", "done", "done", 5, "{\"rows\":1}", "{}"};
  s.actor = "alice";
  s.os_user = "lethe";
  s.unit = "";
  s.prev_hash = audit::k_genesis_hash;
  const std::string base = audit::chain_hash(s);
  CHECK(base.size() == 64);
  CHECK(audit::chain_hash(s) == base);

  auto changed = [&](auto mutate) {
    audit::Stored t = s;
    mutate(t);
    return audit::chain_hash(t) != base;
  };
  CHECK(changed([](audit::Stored& t) { t.seq = 2; }));
  CHECK(changed([](audit::Stored& t) { t.recorded_at[3] = '7'; }));
  CHECK(changed([](audit::Stored& t) { t.record.kind = audit::Kind::alarm; }));
  CHECK(changed([](audit::Stored& t) { t.record.job = "purgE"; }));
  CHECK(changed([](audit::Stored& t) { t.actor = "mallory"; }));
  CHECK(changed([](audit::Stored& t) { t.os_user = "root"; }));
  CHECK(changed([](audit::Stored& t) { t.unit = "x.service"; }));
  CHECK(changed([](audit::Stored& t) { t.record.run_id = 6; }));
  CHECK(changed([](audit::Stored& t) { t.record.outcome = "failed"; }));
  CHECK(changed([](audit::Stored& t) { t.record.exit_reason = "x"; }));
  CHECK(changed([](audit::Stored& t) { t.record.counts = "{\"rows\":2}"; }));
  CHECK(changed([](audit::Stored& t) { t.record.details = "{\"a\":1}"; }));
  CHECK(changed([](audit::Stored& t) { t.prev_hash[0] = '1'; }));
  // Length-prefixed fields: moving a character between neighbours changes the hash.
  CHECK(changed([](audit::Stored& t) {
    t.actor = "alic";
    t.os_user = "elethe";
  }));
}
