// C18: incidents. Every alarm opens one (or adds to the open one of its kind); operators
// acknowledge, record the notice to Amazon, add notes (refused when they quote PII) and close,
// each change audited with its operator and applied only with its audit record; an overdue
// notice fails `lethe check`.
#include "support/cluster.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace lethe;

namespace {

test::RunResult run(const test::TestDb& t, const std::string& args, int exit = 0,
                    const std::filesystem::path& cfg = {}) {
  test::RunResult r = t.lethe(args, cfg);
  INFO(args << "\n" << r.out << r.err);
  REQUIRE(r.exit == exit);
  return r;
}

nlohmann::json incident(const test::TestDb& t, long long id) {
  return nlohmann::json::parse(run(t, "incident show " + std::to_string(id) + " --json").out);
}

long long count(db::Session& s, const std::string& sql) {
  return s.exec(sql).integer(0, 0);
}

} // namespace

TEST_CASE("incidents: opened by alarms, acknowledged, noted, notified and closed, each change "
          "audited with its operator",
          "[incidents]") {
  test::TestDb t("incidents_flow", 100);
  t.migrate_and_grant();
  t.approve();
  auto s = t.admin();
  std::string all_output;

  // Two safety-limit refusals: one incident with two alarms.
  run(t, "purge", 65);
  run(t, "purge", 65);
  REQUIRE(count(*s, "SELECT count(*) FROM lethe.incidents") == 1);
  nlohmann::json i = incident(t, 1);
  CHECK(i["kind"] == "purge: safety_limit");
  CHECK(i["state"] == "open");
  CHECK(i["alarms"] == 2);
  CHECK(i["notify_overdue"] == false);
  CHECK(i["notify_hours_left"].get<double>() == Approx(24.0).margin(0.1));
  test::RunResult list = run(t, "incident list");
  CHECK(list.out.find("purge: safety_limit") != std::string::npos);
  CHECK(list.out.find("notice due in 2") != std::string::npos);
  all_output += list.out + list.err;

  // Acknowledge: who, once.
  CHECK(run(t, "incident ack 1", 64).err.find("HINT: name yourself") != std::string::npos);
  run(t, "incident ack 1 --operator alice");
  CHECK(run(t, "incident ack 1 --operator bob", 65).err.find("alice") != std::string::npos);
  CHECK(incident(t, 1)["acked_by"] == "alice");

  // A note quoting a buyer's data is refused, the value never echoed, nothing recorded but the
  // refusal; case and punctuation do not hide it.
  std::string name = s->exec("SELECT buyer_name FROM orders WHERE buyer_name IS NOT NULL "
                             "AND length(buyer_name) > 5 LIMIT 1")
                         .text(0, 0);
  std::string email = s->exec("SELECT buyer_email FROM orders WHERE buyer_email IS NOT NULL "
                              "LIMIT 1")
                          .text(0, 0);
  std::string upper = email;
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  for (const std::string& note : {"called " + name + " about it", "mail (" + upper + "), no answer",
                                  "the buyer wrote from " + email + "."}) {
    test::RunResult r = t.lethe("incident note 1 --operator alice --text '" + note + "'");
    INFO(note);
    CHECK(r.exit == 65);
    CHECK(r.err.find("nothing was recorded") != std::string::npos);
    CHECK(r.err.find("HINT:") != std::string::npos);
    all_output += r.out + r.err;
  }
  CHECK(count(*s, "SELECT count(*) FROM lethe.incident_notes") == 0);
  CHECK(count(*s, "SELECT count(*) FROM lethe.audit_log WHERE exit_reason = 'pii_in_text'") == 3);
  run(t, "incident note 1 --operator alice --text 'safety limit: the purge log shows 75 of 100 "
         "orders due after the clock change'");
  run(t, "incident note 1 --operator carol --remediation --text 'retention.days fixed'");
  nlohmann::json shown = incident(t, 1);
  REQUIRE(shown["notes"].size() == 2);
  CHECK(shown["notes"][0]["kind"] == "investigation");
  CHECK(shown["notes"][1]["kind"] == "remediation");
  CHECK(shown["notes"][1]["noted_by"] == "carol");

  // Closing needs the notice (or the judgement that none was owed).
  test::RunResult early = run(t, "incident close 1 --operator alice --reason 'fixed'", 65);
  CHECK(early.err.find("HINT: record it with `lethe incident notify 1") != std::string::npos);
  // The notice: not in the future, not before the incident, once.
  run(t, "incident notify 1 --operator alice --channel 'email' --at '2999-01-01'", 64);
  run(t, "incident notify 1 --operator alice --channel 'email' --at '2000-01-01'", 64);
  run(t, "incident notify 1 --operator alice", 64);
  run(t, "incident notify 1 --operator alice --channel 'email to Amazon security'");
  run(t, "incident notify 1 --operator alice --channel 'email'", 65);
  CHECK(incident(t, 1)["notify_channel"] == "email to Amazon security");
  // Amazon was told of incident 1: the same alarm now is a new incident with its own clock.
  run(t, "purge", 65);
  CHECK(count(*s, "SELECT count(*) FROM lethe.incidents") == 2);
  CHECK(incident(t, 1)["alarms"] == 2);
  CHECK(incident(t, 2)["alarms"] == 1);
  run(t, "incident close 1 --operator alice", 64);
  run(t, "incident close 1 --operator alice --reason 'limit raised after review'");
  CHECK(incident(t, 1)["state"] == "closed");
  CHECK(incident(t, 1)["closed_by"] == "alice");
  run(t, "incident note 1 --operator alice --text 'late'", 65);

  // Every change is an audit record naming its operator.
  db::Rows changes = s->exec("SELECT exit_reason, actor FROM lethe.audit_log WHERE job = "
                             "'incident' AND kind = 'manual' ORDER BY seq");
  REQUIRE(changes.size() == 5);
  CHECK(changes.text(0, 0) == "ack");
  CHECK(changes.text(0, 1) == "alice");
  CHECK(changes.text(2, 1) == "carol");
  CHECK(changes.text(3, 0) == "notify");
  CHECK(changes.text(4, 0) == "close");

  // Incident 1 closed: the same alarm again adds to incident 2, which Amazon was not told of;
  // it is closed without notice only by judgement.
  run(t, "purge", 65);
  REQUIRE(count(*s, "SELECT count(*) FROM lethe.incidents WHERE state = 'open'") == 1);
  CHECK(incident(t, 2)["alarms"] == 2);
  run(t, "incident close 2 --operator bob --reason 'expected: test data' --no-notice-owed");
  CHECK(incident(t, 2)["notice_not_required"] == true);

  // An operator's own incident.
  run(t, "incident open --operator bob --type 'Lost Laptop' --reason 'x'", 64);
  run(t, "incident open --operator bob --type lost_device --reason 'a support laptop was lost'");
  CHECK(incident(t, 3)["kind"] == "manual: lost_device");
  CHECK(incident(t, 3)["alarms"] == 0);

  CHECK(run(t, "audit verify").exit == 0);
  for (long long id : {1, 2, 3}) {
    all_output += incident(t, id).dump();
  }
  all_output += util::read_file(t.dir() / "audit-anchor");
  all_output += run(t, "audit show --json").out;
  test::require_no_pii(all_output, t.pii_values());
}

TEST_CASE("incidents: an overdue notice fails `lethe check` and shows in the metrics, and the "
          "database refuses a change without its audit record",
          "[incidents]") {
  test::TestDb t("incidents_overdue", 100);
  t.migrate_and_grant();
  t.approve();
  auto s = t.admin();
  std::filesystem::create_directories(t.dir() / "metrics");
  auto cfg = t.write_config("m.toml", test::set_key(t.config_text(), "textfile_dir",
                                                    "\"" + (t.dir() / "metrics").string() + "\""));
  run(t, "purge", 65, cfg);
  run(t, "purge --force", 0, cfg);
  run(t, "check", 0, cfg);
  // 25 hours later, as far as the incident's clock goes.
  s->exec("UPDATE lethe.incidents SET opened_at = opened_at - interval '25 hours', "
          "notify_by = notify_by - interval '25 hours'");
  test::RunResult c = run(t, "check", 1, cfg);
  CHECK(c.out.find("notice to Amazon overdue: 1") != std::string::npos);
  CHECK(c.out.find("lethe incident notify ID") != std::string::npos);
  nlohmann::json cj = nlohmann::json::parse(run(t, "check --json", 1, cfg).out);
  CHECK(cj["incidents_notify_overdue"] == 1);
  std::string prom = util::read_file(t.dir() / "metrics" / "lethe.prom");
  CHECK(prom.find("\nlethe_incidents_notify_overdue 1\n") != std::string::npos);
  CHECK(run(t, "incident list", 0, cfg).out.find("notice OVERDUE by 1.0 h") != std::string::npos);
  // The purge's own constant and a short number are not PII found in a note.
  run(t, "incident note 1 --operator alice --text 'names were [redacted] by the purge; 12345 rows'",
      0, cfg);
  run(t, "incident notify 1 --operator alice --channel 'phone'", 0, cfg);
  run(t, "check", 0, cfg);
  prom = util::read_file(t.dir() / "metrics" / "lethe.prom");
  CHECK(prom.find("\nlethe_incidents_notify_overdue 0\n") != std::string::npos);

  // The change function needs its audit record in the same transaction.
  long long seq = count(*s, "SELECT max(seq) FROM lethe.audit_log");
  try {
    s->exec("SELECT lethe.incident_change(" + std::to_string(seq) + ")");
    FAIL("incident_change accepted a record from another transaction");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::permission);
  }
  // A job role can neither change incidents nor call the function.
  t.alter_roles("ALTER ROLE lethe_purge PASSWORD 'pw-purge'");
  test::write_file(t.dir() / "purge.password", "pw-purge\n", 0600);
  auto pcfg = t.write_config("purge.toml",
                             t.config_text("lethe_purge", (t.dir() / "purge.password").string()));
  auto ps = db::connect(settings::load(pcfg));
  for (const std::string& sql :
       {std::string("UPDATE lethe.incidents SET state = 'closed'"),
        std::string("SELECT lethe.incident_change(1)"),
        std::string("INSERT INTO lethe.incident_notes VALUES (1, 999, now(), 'x', "
                    "'investigation', 'x')")}) {
    INFO(sql);
    try {
      ps->exec(sql);
      FAIL("allowed");
    } catch (const Error& e) {
      CHECK(e.code() == Exit::permission);
    }
  }
  // The monitor reads incidents but cannot check a note against the PII columns.
  t.alter_roles("ALTER ROLE lethe_monitor PASSWORD 'pw-monitor'");
  test::write_file(t.dir() / "monitor.password", "pw-monitor\n", 0600);
  auto mcfg = t.write_config(
      "monitor.toml", t.config_text("lethe_monitor", (t.dir() / "monitor.password").string()));
  run(t, "incident list", 0, mcfg);
  test::RunResult note = run(t, "incident note 1 --operator m --text 'looked'", 77, mcfg);
  CHECK(note.err.find("HINT: run incident commands with a configuration") != std::string::npos);
}
