#include "worker/audit/anchor.hpp"
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

TEST_CASE("chain_hash: version 2 covers the inserting role, a record without one is version 1") {
  audit::Stored s;
  s.seq = 7;
  s.recorded_at = "2026-11-22T00:00:00.000000Z";
  s.actor = "auditor-jane";
  s.prev_hash = audit::k_genesis_hash;
  const std::string v1 = audit::chain_hash(s);
  s.db_role = "lethe_purge";
  const std::string purge = audit::chain_hash(s);
  s.db_role = "lethe_archive";
  CHECK(audit::chain_hash(s) != purge);
  CHECK(purge != v1);
}

TEST_CASE("parse_anchor: strict lines, a torn last line, and the record a bad line begins with") {
  const std::string h(64, 'a');
  audit::AnchorFile ok = audit::parse_anchor("1 " + h + "\n2 " + h + "\n3 " + h.substr(0, 9));
  CHECK(ok.lines.size() == 2);
  CHECK(ok.bad_line == 0);
  CHECK(ok.torn_line == 3);
  CHECK(ok.newest_seq() == 2);

  for (const std::string& bad :
       {std::string("# comment"), std::string(""), "01 " + h, "4 " + h + " ", "4  " + h,
        "4 " + std::string(64, 'A'), "4 " + h.substr(0, 12) + "5 " + h}) {
    INFO(bad);
    audit::AnchorFile f = audit::parse_anchor("1 " + h + "\n" + bad + "\n6 " + h + "\n");
    CHECK(f.bad_line == 2);
    CHECK(f.lines.size() == 2);
    CHECK(f.torn_line == 0);
  }
  audit::AnchorFile glued =
      audit::parse_anchor("1 " + h + "\n16 " + h.substr(0, 7) + "17 " + h + "\n");
  CHECK(glued.bad_line_seq == 16);
  CHECK(glued.bad_line_text("anchor").find("line 2 is not '<seq> <sha256>' (it begins with "
                                           "record 16)") != std::string::npos);
  CHECK(audit::parse_anchor("").lines.empty());
}
