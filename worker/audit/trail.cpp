#include "worker/audit/trail.hpp"

#include "worker/audit/anchor.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/log/log.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <functional>
#include <map>
#include <random>
#include <sstream>

namespace lethe::audit {
namespace {

constexpr const char* k_timestamp_format = R"(YYYY-MM-DD"T"HH24:MI:SS.US"Z")";

constexpr const char* k_select_columns =
    "seq, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), kind, job, "
    "actor, os_user, unit, run_id, outcome, exit_reason, counts, details, prev_hash, hash, db_role";

Kind parse_kind(const std::string& s) {
  if (s == "refusal") {
    return Kind::refusal;
  }
  if (s == "alarm") {
    return Kind::alarm;
  }
  if (s == "manual") {
    return Kind::manual;
  }
  return Kind::run;
}

Stored from_row(const db::Rows& r, size_t i) {
  Stored s;
  s.seq = r.integer(i, 0);
  s.recorded_at = r.text(i, 1);
  s.record.kind = parse_kind(r.text(i, 2));
  s.record.job = r.text(i, 3);
  s.actor = r.text(i, 4);
  s.os_user = r.text(i, 5);
  s.unit = r.text(i, 6);
  if (r.at(i, 7)) {
    s.record.run_id = std::stoll(*r.at(i, 7));
  }
  s.record.outcome = r.text(i, 8);
  s.record.exit_reason = r.text(i, 9);
  s.record.counts = r.text(i, 10);
  s.record.details = r.text(i, 11);
  s.prev_hash = r.text(i, 12);
  s.hash = r.text(i, 13);
  s.db_role = r.at(i, 14).value_or("");
  return s;
}

// Spool lines: tab-separated fields, with \t, \n and \\ escaped.
std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::string> split_escaped(const std::string& line) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\t') {
      out.emplace_back();
    } else if (c == '\\' && i + 1 < line.size()) {
      char n = line[++i];
      out.back() += n == 't' ? '\t' : n == 'n' ? '\n' : n;
    } else {
      out.back() += c;
    }
  }
  return out;
}

std::string random_id() {
  std::random_device rd;
  std::ostringstream o;
  o << std::hex << rd() << rd();
  return o.str();
}

// `json_object` with `fields` put first. A text that is not a JSON object (a damaged spool line)
// is kept whole as "original_details", never dropped.
std::string with_fields(const std::string& json_object, util::Json fields) {
  util::Json rest = util::json_or_text(json_object);
  if (!rest.is_object()) {
    fields["original_details"] = json_object;
    return util::dump(fields);
  }
  for (auto& [k, v] : rest.items()) {
    if (!fields.contains(k)) {
      fields[k] = v;
    }
  }
  return util::dump(fields);
}

// Ends run `run_id`'s job_runs row with what its closing record `seq` (inserted by `tx`) says,
// unless something ended it already. The definer function of schema 5 takes the outcome and
// counts from the record itself: job roles cannot update job_runs.
void close_run_row(db::Transaction& tx, long long run_id, long long seq) {
  tx.exec("SELECT lethe.close_run($1::bigint, $2::bigint)",
          {std::to_string(run_id), std::to_string(seq)});
}

} // namespace

const char* kind_name(Kind kind) {
  switch (kind) {
  case Kind::run:
    return "run";
  case Kind::refusal:
    return "refusal";
  case Kind::alarm:
    return "alarm";
  case Kind::manual:
    return "manual";
  }
  return "run";
}

std::string chain_hash(const Stored& s) {
  bool v2 = !s.db_role.empty();
  std::string text = v2 ? "lethe-audit-v2\n" : "lethe-audit-v1\n";
  auto field = [&text](const std::string& v) {
    text += std::to_string(v.size());
    text += ':';
    text += v;
    text += '\n';
  };
  field(std::to_string(s.seq));
  field(s.recorded_at);
  field(kind_name(s.record.kind));
  field(s.record.job);
  field(s.actor);
  field(s.os_user);
  field(s.unit);
  if (v2) {
    field(s.db_role);
  }
  field(s.record.run_id ? std::to_string(*s.record.run_id) : std::string{});
  field(s.record.outcome);
  field(s.record.exit_reason);
  field(s.record.counts);
  field(s.record.details);
  field(s.prev_hash);
  return crypto::hex(crypto::sha256(text));
}

Trail::Trail(std::filesystem::path anchor_file, std::filesystem::path spool_file,
             util::Identity who)
    : m_anchor(std::move(anchor_file)), m_spool(std::move(spool_file)), m_who(std::move(who)) {}

Stored Trail::append(db::Session& session, const Record& r, Closes closes) {
  Stored s;
  session.transact([&](db::Transaction& tx) { s = append_in(tx, r, closes); });
  anchor(s);
  return s;
}

Stored Trail::append_in(db::Transaction& tx, const Record& r, Closes closes) {
  Stored s;
  s.record = r;
  if (closes == Closes::run && r.run_id) {
    // A run another host already ended (e.g. closed as abandoned while this record waited in
    // the spool) keeps its first end; this record still says what the run did, and says that
    // it came after the run's end, so the trail never shows two ends of one run unmarked.
    db::Rows run = tx.exec("SELECT outcome FROM lethe.job_runs WHERE run_id = $1",
                           {std::to_string(*r.run_id)});
    if (!run.empty() && run.text(0, 0) != "running") {
      s.record.details = with_fields(s.record.details, {{"run_already_ended_as", run.text(0, 0)}});
    }
  }
  s.actor = m_who.actor;
  s.os_user = m_who.os_user;
  s.unit = m_who.unit;
  tx.exec("SELECT pg_advisory_xact_lock(hashtext('lethe.audit'))");
  db::Rows last = tx.exec("SELECT seq, hash FROM lethe.audit_log ORDER BY seq DESC LIMIT 1");
  s.seq = last.empty() ? 1 : last.integer(0, 0) + 1;
  s.prev_hash = last.empty() ? k_genesis_hash : last.text(0, 1);
  // The server stamps the inserting role (schema 3's trigger); hash what it will stamp.
  db::Rows now = tx.exec(std::string("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', '") +
                         k_timestamp_format +
                         "'), CASE WHEN EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
                         "'lethe.audit_log'::regclass AND attname = 'db_role' AND NOT "
                         "attisdropped) THEN session_user END");
  s.recorded_at = now.text(0, 0);
  s.db_role = now.at(0, 1).value_or("");
  s.hash = chain_hash(s);
  tx.exec("INSERT INTO lethe.audit_log (seq, recorded_at, kind, job, actor, os_user, unit, "
          "run_id, outcome, exit_reason, counts, details, prev_hash, hash) VALUES ($1, "
          "$2::timestamptz, $3, $4, $5, $6, $7, $8::bigint, $9, $10, $11, $12, $13, $14)",
          {std::to_string(s.seq), s.recorded_at, std::string(kind_name(r.kind)), r.job, s.actor,
           s.os_user, s.unit, r.run_id ? db::Value(std::to_string(*r.run_id)) : db::Value{},
           r.outcome, r.exit_reason, r.counts, s.record.details, s.prev_hash, s.hash});
  if (closes == Closes::run && r.run_id) {
    close_run_row(tx, *r.run_id, s.seq);
  }
  return s;
}

void Trail::anchor(const Stored& s) {
  util::AppendOutcome out;
  try {
    out = util::append_line_atomically(m_anchor, anchor_line(s.seq, s.hash));
  } catch (const Error& e) {
    log::event(log::Level::error, "audit.anchor_failed",
               {{"seq", s.seq}, {"anchor", m_anchor.string()}});
    throw Error(
        Exit::io,
        "audit record " + std::to_string(s.seq) +
            " is committed, but its line could not be appended to the anchor file: " + e.what(),
        "free space (or raise the file size limit) where audit.anchor_file lives; the "
        "record is in the database (not lost, not spooled) and the next run's append "
        "repairs the anchor");
  }
  if (out.torn_line > 0) {
    log::event(log::Level::notice, "audit.anchor_repaired",
               {{"anchor", m_anchor.string()},
                {"torn_line", out.torn_line},
                {"bytes_cut", static_cast<long long>(out.torn_bytes)}});
  }
  log::event(log::Level::info, "audit.recorded",
             {{"seq", s.seq},
              {"kind", kind_name(s.record.kind)},
              {"job", s.record.job},
              {"outcome", s.record.outcome}});
}

void Trail::spool(const Record& r, Closes closes, const std::string& maybe_hash) noexcept {
  try {
    std::string client_time = std::to_string(std::time(nullptr));
    std::string line = escape(random_id()) + "\t" + client_time + "\t" + kind_name(r.kind) + "\t" +
                       escape(r.job) + "\t" + escape(m_who.actor) + "\t" + escape(m_who.os_user) +
                       "\t" + escape(m_who.unit) + "\t" + escape(r.outcome) + "\t" +
                       escape(r.exit_reason) + "\t" + escape(r.counts) + "\t" + escape(r.details) +
                       "\t" + (r.run_id ? std::to_string(*r.run_id) : std::string()) + "\t" +
                       (closes == Closes::run ? "closes_run" : "") + "\t" + escape(maybe_hash);
    util::append_durably(m_spool, line);
    log::event(log::Level::notice, "audit.spooled",
               {{"job", r.job}, {"outcome", r.outcome}, {"spool", m_spool.string()}});
  } catch (const std::exception& e) {
    log::event(log::Level::error, "audit.spool_failed",
               {{"job", r.job}, {"spool", m_spool.string()}, {"error", e.what()}});
  }
}

size_t Trail::flush_spool(db::Session& session) {
  std::error_code ec;
  if (!std::filesystem::exists(m_spool, ec) || std::filesystem::file_size(m_spool, ec) == 0) {
    return 0;
  }
  std::istringstream in(util::read_file(m_spool));
  std::string line;
  size_t moved = 0;
  util::Identity original = m_who;
  while (std::getline(in, line)) {
    std::vector<std::string> f = split_escaped(line);
    // 11 fields before schema 3; then also the run id, whether it ends its run, and the hash it
    // would have had when its commit was in doubt.
    if (f.size() != 11 && f.size() != 14) {
      log::event(log::Level::warning, "audit.spool_line_skipped", {{"fields", f.size()}});
      continue;
    }
    db::Rows seen = session.exec(
        "SELECT 1 FROM lethe.audit_log WHERE details::jsonb->>'spool_id' = $1", {f[0]});
    if (!seen.empty() ||
        (f.size() == 14 && !f[13].empty() &&
         !session.exec("SELECT 1 FROM lethe.audit_log WHERE hash = $1", {f[13]}).empty())) {
      continue;
    }
    Record r;
    r.kind = parse_kind(f[2]);
    r.job = f[3];
    r.outcome = f[7];
    r.exit_reason = f[8];
    r.counts = f[9];
    r.details =
        with_fields(f[10], {{"spool_id", f[0]}, {"spooled_at_unix", util::json_or_text(f[1])}});
    if (f.size() == 14 && !f[11].empty()) {
      r.run_id = std::stoll(f[11]);
    }
    Closes closes = f.size() == 14 && f[12] == "closes_run" ? Closes::run : Closes::nothing;
    m_who = util::Identity{f[4], f[5], f[6]};
    try {
      append(session, r, closes);
    } catch (...) {
      m_who = original;
      throw;
    }
    m_who = original;
    ++moved;
  }
  util::write_file_atomically(m_spool, "");
  return moved;
}

namespace {

const char* const k_incident_hint =
    "treat this as a security incident (C18): keep the database and anchor file as they are and "
    "compare with backups";
const char* const k_reanchor_hint =
    "treat this as a security incident (C18) unless the anchor file was lost or edited for a "
    "reason you know; then `lethe audit reanchor --operator NAME --reason TEXT` records who and "
    "why, keeps the old file beside the new one and anchors the trail again";

// Compares the chain in the table with itself and with the anchor lines `anchored` (by seq).
void walk_chain(db::Session& session,
                const std::map<long long, std::vector<const AnchorLine*>>& anchored,
                const std::function<void(long long, std::string)>& fail, VerifyReport& rep) {
  std::string prev = k_genesis_hash;
  long long expected = 1;
  while (rep.ok) {
    db::Rows page =
        session.exec(std::string("SELECT ") + k_select_columns +
                         " FROM lethe.audit_log WHERE seq >= $1 ORDER BY seq LIMIT 5000",
                     {std::to_string(expected)});
    for (size_t i = 0; i < page.size() && rep.ok; ++i) {
      Stored s = from_row(page, i);
      std::string n = std::to_string(s.seq);
      if (s.seq != expected) {
        fail(expected, "record " + std::to_string(expected) + " is missing (next is " + n + ")");
        break;
      }
      if (s.prev_hash != prev) {
        fail(s.seq, "record " + n + " does not link to record " + std::to_string(s.seq - 1));
      } else if (chain_hash(s) != s.hash) {
        fail(s.seq, "record " + n + " was altered: its hash does not match its content" +
                        (s.db_role.empty() ? std::string()
                                           : " and the role that inserted it (" + s.db_role + ")"));
      } else if (auto a = anchored.find(s.seq); a != anchored.end()) {
        for (const AnchorLine* l : a->second) {
          if (l->hash != s.hash) {
            fail(s.seq, "record " + n + " differs from anchor file line " +
                            std::to_string(l->line) + ", which was written for it");
            break;
          }
        }
      }
      prev = s.hash;
      ++expected;
      ++rep.records;
    }
    if (page.size() < 5000) {
      break;
    }
  }
}

} // namespace

VerifyReport verify(db::Session& session, const std::filesystem::path& anchor_file) {
  VerifyReport rep;
  AnchorFile af = read_anchor(anchor_file);
  std::map<long long, std::vector<const AnchorLine*>> anchored;
  const AnchorLine* newest = nullptr;
  for (const AnchorLine& l : af.lines) {
    anchored[l.seq].push_back(&l);
    newest = newest == nullptr || l.seq > newest->seq ? &l : newest;
  }
  rep.anchored_seq = af.newest_seq();
  auto fail = [&rep](long long seq, std::string problem, const char* hint = k_incident_hint) {
    if (rep.ok) {
      rep.ok = false;
      rep.first_broken_seq = seq;
      rep.problem = std::move(problem);
      rep.hint = hint;
    }
  };
  walk_chain(
      session, anchored, [&fail](long long seq, std::string p) { fail(seq, std::move(p)); }, rep);
  if (newest != nullptr && newest->seq > rep.records) {
    fail(rep.records + 1, "the audit table ends at record " + std::to_string(rep.records) +
                              " but the anchor file names record " + std::to_string(newest->seq) +
                              " (line " + std::to_string(newest->line) +
                              "): records were removed or the database was rolled back");
  }
  if (af.bad_line > 0) {
    fail(af.bad_line_seq, af.bad_line_text(anchor_file) + ": it was edited or added by hand",
         k_reanchor_hint);
  }
  if (af.lines.empty() && rep.records > 0) {
    fail(0,
         "anchor file " + anchor_file.string() +
             (af.exists ? " holds no complete line" : " is absent") +
             " while the audit table holds " + std::to_string(rep.records) +
             " records: removed records could not be told",
         k_reanchor_hint);
  }
  if (af.torn_line > 0) {
    rep.warning = "anchor file " + anchor_file.string() + " line " + std::to_string(af.torn_line) +
                  " is torn (an append was interrupted by a crash or a full disk); the next "
                  "append cuts it off";
  }
  return rep;
}

Stored reanchor(db::Session& session, Trail& trail, const std::string& reason) {
  const std::filesystem::path& path = trail.anchor_file();
  VerifyReport rep = verify(session, path);
  if (rep.ok) {
    throw Error(Exit::usage, "the anchor file " + path.string() + " agrees with the audit table",
                "nothing to re-anchor; `lethe audit verify` passes");
  }
  if (rep.hint != k_reanchor_hint) {
    throw Error(Exit::data, "refusing to re-anchor: " + rep.problem,
                std::string(k_incident_hint) + "; re-anchoring would hide this, so it is refused");
  }
  AnchorFile before = read_anchor(path);
  std::string old_text = before.exists ? util::read_file(path) : std::string();
  util::Json details{{"reason", reason}, {"anchor_file", path.string()}, {"problem", rep.problem}};
  if (before.exists) {
    details["old_anchor_sha256"] = crypto::hex(crypto::sha256(old_text));
  }
  Record r{Kind::manual,
           "audit reanchor",
           "done",
           "reanchored",
           std::nullopt,
           util::dump({{"records", rep.records},
                       {"old_anchor_lines", static_cast<long long>(before.total_lines)}}),
           util::dump(details)};
  Stored s;
  session.transact([&](db::Transaction& tx) { s = trail.append_in(tx, r); });
  if (before.exists) {
    std::filesystem::path kept = path;
    kept += ".replaced-" + std::to_string(s.seq);
    std::error_code ec;
    std::filesystem::rename(path, kept, ec);
    if (ec) {
      throw Error(Exit::io,
                  "cannot keep the old anchor file as " + kept.string() + ": " + ec.message(),
                  "record " + std::to_string(s.seq) +
                      " (the re-anchoring) is committed; move the "
                      "old file aside by hand and run `lethe audit reanchor` again");
    }
    log::event(log::Level::notice, "audit.anchor_kept", {{"kept_as", kept.string()}});
  }
  util::write_file_atomically(path, anchor_line(s.seq, s.hash) + "\n");
  log::event(log::Level::notice, "audit.reanchored",
             {{"seq", s.seq}, {"actor", s.actor}, {"anchor", path.string()}});
  return s;
}

std::vector<Stored> show(db::Session& session, const ShowFilter& f) {
  db::Rows r = session.exec(std::string("SELECT * FROM (SELECT ") + k_select_columns +
                                " FROM lethe.audit_log WHERE ($1 = '' OR job = $1) ORDER BY seq "
                                "DESC LIMIT $2) t ORDER BY seq",
                            {f.job, std::to_string(f.limit)});
  std::vector<Stored> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(from_row(r, i));
  }
  return out;
}

std::string to_json(const Stored& s) {
  util::Json o{{"seq", s.seq},
               {"recorded_at", s.recorded_at},
               {"kind", kind_name(s.record.kind)},
               {"job", s.record.job},
               {"actor", s.actor},
               {"os_user", s.os_user},
               {"unit", s.unit}};
  if (!s.db_role.empty()) {
    o["db_role"] = s.db_role;
  }
  if (s.record.run_id) {
    o["run_id"] = *s.record.run_id;
  }
  o["outcome"] = s.record.outcome;
  o["exit_reason"] = s.record.exit_reason;
  o["counts"] = util::json_or_text(s.record.counts);
  o["details"] = util::json_or_text(s.record.details);
  o["prev_hash"] = s.prev_hash;
  o["hash"] = s.hash;
  return util::dump(o);
}

} // namespace lethe::audit
