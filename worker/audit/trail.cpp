#include "worker/audit/trail.hpp"

#include "worker/crypto/hash.hpp"
#include "worker/log/log.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <map>
#include <random>
#include <sstream>

namespace lethe::audit {
namespace {

constexpr const char* k_timestamp_format = R"(YYYY-MM-DD"T"HH24:MI:SS.US"Z")";

constexpr const char* k_select_columns =
    "seq, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), kind, job, "
    "actor, os_user, unit, run_id, outcome, exit_reason, counts, details, prev_hash, hash";

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

std::string with_field(const std::string& json_object, const std::string& field_json) {
  if (json_object == "{}") {
    return "{" + field_json + "}";
  }
  return "{" + field_json + "," + json_object.substr(1);
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
  std::string text = "lethe-audit-v1\n";
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

Stored Trail::append(db::Session& session, const Record& r) {
  Stored s;
  session.transact([&](db::Transaction& tx) { s = append_in(tx, r); });
  anchor(s);
  return s;
}

Stored Trail::append_in(db::Transaction& tx, const Record& r) {
  Stored s;
  s.record = r;
  s.actor = m_who.actor;
  s.os_user = m_who.os_user;
  s.unit = m_who.unit;
  tx.exec("SELECT pg_advisory_xact_lock(hashtext('lethe.audit'))");
  db::Rows last = tx.exec("SELECT seq, hash FROM lethe.audit_log ORDER BY seq DESC LIMIT 1");
  s.seq = last.empty() ? 1 : last.integer(0, 0) + 1;
  s.prev_hash = last.empty() ? k_genesis_hash : last.text(0, 1);
  s.recorded_at = tx.exec(std::string("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', '") +
                          k_timestamp_format + "')")
                      .text(0, 0);
  s.hash = chain_hash(s);
  tx.exec("INSERT INTO lethe.audit_log (seq, recorded_at, kind, job, actor, os_user, unit, "
          "run_id, outcome, exit_reason, counts, details, prev_hash, hash) VALUES ($1, "
          "$2::timestamptz, $3, $4, $5, $6, $7, $8::bigint, $9, $10, $11, $12, $13, $14)",
          {std::to_string(s.seq), s.recorded_at, std::string(kind_name(r.kind)), r.job, s.actor,
           s.os_user, s.unit, r.run_id ? db::Value(std::to_string(*r.run_id)) : db::Value{},
           r.outcome, r.exit_reason, r.counts, r.details, s.prev_hash, s.hash});
  return s;
}

void Trail::anchor(const Stored& s) {
  util::append_durably(m_anchor, std::to_string(s.seq) + " " + s.hash);
  log::event(log::Level::info, "audit.recorded",
             {{"seq", s.seq},
              {"kind", kind_name(s.record.kind)},
              {"job", s.record.job},
              {"outcome", s.record.outcome}});
}

void Trail::spool(const Record& r) noexcept {
  try {
    std::string client_time = std::to_string(std::time(nullptr));
    std::string line = escape(random_id()) + "\t" + client_time + "\t" + kind_name(r.kind) + "\t" +
                       escape(r.job) + "\t" + escape(m_who.actor) + "\t" + escape(m_who.os_user) +
                       "\t" + escape(m_who.unit) + "\t" + escape(r.outcome) + "\t" +
                       escape(r.exit_reason) + "\t" + escape(r.counts) + "\t" + escape(r.details);
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
    if (f.size() != 11) {
      log::event(log::Level::warning, "audit.spool_line_skipped", {{"fields", f.size()}});
      continue;
    }
    std::string spool_id;
    util::append_json_string(spool_id, f[0]);
    db::Rows seen = session.exec(
        "SELECT 1 FROM lethe.audit_log WHERE details::jsonb->>'spool_id' = $1", {f[0]});
    if (!seen.empty()) {
      continue;
    }
    Record r;
    r.kind = parse_kind(f[2]);
    r.job = f[3];
    r.outcome = f[7];
    r.exit_reason = f[8];
    r.counts = f[9];
    r.details = with_field(f[10], "\"spool_id\":" + spool_id + ",\"spooled_at_unix\":" + f[1]);
    m_who = util::Identity{f[4], f[5], f[6]};
    try {
      append(session, r);
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

VerifyReport verify(db::Session& session, const std::filesystem::path& anchor_file) {
  VerifyReport rep;
  std::map<long long, std::string> anchored;
  std::error_code ec;
  if (std::filesystem::exists(anchor_file, ec)) {
    std::istringstream in(util::read_file(anchor_file));
    long long seq = 0;
    std::string hash;
    while (in >> seq >> hash) {
      anchored[seq] = hash;
    }
  }
  rep.anchored_seq = anchored.empty() ? 0 : anchored.rbegin()->first;

  auto fail = [&rep](long long seq, std::string problem) {
    if (rep.ok) {
      rep.ok = false;
      rep.first_broken_seq = seq;
      rep.problem = std::move(problem);
    }
  };

  std::string prev = k_genesis_hash;
  long long expected = 1;
  while (rep.ok) {
    db::Rows page =
        session.exec(std::string("SELECT ") + k_select_columns +
                         " FROM lethe.audit_log WHERE seq >= $1 ORDER BY seq LIMIT 5000",
                     {std::to_string(expected)});
    for (size_t i = 0; i < page.size() && rep.ok; ++i) {
      Stored s = from_row(page, i);
      if (s.seq != expected) {
        fail(expected, "record " + std::to_string(expected) + " is missing (next is " +
                           std::to_string(s.seq) + ")");
        break;
      }
      if (s.prev_hash != prev) {
        fail(s.seq, "record " + std::to_string(s.seq) + " does not link to record " +
                        std::to_string(s.seq - 1));
      } else if (chain_hash(s) != s.hash) {
        fail(s.seq, "record " + std::to_string(s.seq) +
                        " was altered: its hash does not match "
                        "its content");
      } else if (auto a = anchored.find(s.seq); a != anchored.end() && a->second != s.hash) {
        fail(s.seq, "record " + std::to_string(s.seq) + " differs from the anchor file");
      }
      prev = s.hash;
      ++expected;
      ++rep.records;
    }
    if (page.size() < 5000) {
      break;
    }
  }
  if (rep.ok && rep.anchored_seq > rep.records) {
    fail(rep.records + 1, "the audit table ends at record " + std::to_string(rep.records) +
                              " but the anchor file names record " +
                              std::to_string(rep.anchored_seq) +
                              ": records were removed or the database was rolled back");
  }
  if (anchored.empty() && rep.records > 0) {
    rep.warning = "anchor file " + anchor_file.string() + " is absent or empty on this host";
  }
  return rep;
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
  util::JsonObject o;
  o.add("seq", s.seq)
      .add("recorded_at", s.recorded_at)
      .add("kind", kind_name(s.record.kind))
      .add("job", s.record.job)
      .add("actor", s.actor)
      .add("os_user", s.os_user)
      .add("unit", s.unit);
  if (s.record.run_id) {
    o.add("run_id", *s.record.run_id);
  }
  o.add("outcome", s.record.outcome)
      .add("exit_reason", s.record.exit_reason)
      .add_raw("counts", s.record.counts)
      .add_raw("details", s.record.details)
      .add("prev_hash", s.prev_hash)
      .add("hash", s.hash);
  return o.str();
}

} // namespace lethe::audit
