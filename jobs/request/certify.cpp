// `lethe request certify`: the written certification Amazon may ask for, in text or HTML, built
// only from what the database records (the request, its ledger entry, the copies catalog and
// the audit records that name the request), so every line can be checked against
// `lethe audit verify` and `lethe request ledger verify`. No identifier appears: the subject is
// a fingerprint of its keyed HMAC.
#include "jobs/request/common.hpp"
#include "jobs/request/request.hpp"
#include "worker/audit/ledger.hpp"
#include "worker/db/store/requests.hpp"
#include "worker/util/files.hpp"
#include "worker/util/html.hpp"

#include <iostream>
#include <sstream>

namespace lethe::jobs::request {
namespace {

namespace store = db::store;

// One certificate line: a label and its value.
struct Line {
  std::string label;
  std::string value;
};

struct Section {
  std::string title;
  std::vector<Line> lines;
};

struct Certificate {
  std::string title;
  std::string status;
  std::vector<Section> sections;
};

std::string escaped(const std::string& s) {
  return util::html_escape(s);
}

std::string as_text(const Certificate& c) {
  std::ostringstream o;
  o << c.title << "\n" << std::string(c.title.size(), '=') << "\n\n" << c.status << "\n";
  for (const Section& s : c.sections) {
    o << "\n" << s.title << "\n" << std::string(s.title.size(), '-') << "\n";
    for (const Line& l : s.lines) {
      o << "  " << l.label << (l.label.empty() ? "" : ": ") << l.value << "\n";
    }
  }
  return o.str();
}

std::string as_html(const Certificate& c) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
    << escaped(c.title)
    << "</title><style>body{font:14px/1.5 sans-serif;max-width:60em;margin:2em auto}"
       "table{border-collapse:collapse}td{border-top:1px solid #ccc;padding:2px 8px;"
       "vertical-align:top}td:first-child{color:#555}code{font-size:12px}</style></head><body>\n"
    << "<h1>" << escaped(c.title) << "</h1>\n<p><strong>" << escaped(c.status) << "</strong></p>\n";
  for (const Section& s : c.sections) {
    o << "<h2>" << escaped(s.title) << "</h2>\n<table>\n";
    for (const Line& l : s.lines) {
      o << "<tr><td>" << escaped(l.label) << "</td><td><code>" << escaped(l.value)
        << "</code></td></tr>\n";
    }
    o << "</table>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

Certificate build(Context& ctx, const store::RequestRow& r) {
  db::Session& s = ctx.ready_db();
  util::Json counts = util::parse_json(r.counts, "lethe.requests.counts");
  Certificate c;
  c.title = "Certificate of " + std::string(r.action == "delete" ? "deletion" : "return") +
            ": Amazon reference " + r.amazon_ref;
  c.status = r.state == "complete"
                 ? "Complete: the live data was erased and no copy is left online."
                 : "Live data erased; " + std::string("copies are still being removed (state ") +
                       state_as_of(r) + ").";
  c.sections.push_back(
      {"Request",
       {{"lethe request", std::to_string(r.id)},
        {"Amazon reference", r.amazon_ref},
        {"action", r.action},
        {"scope", r.scope_kind + (r.marketplace.empty() ? "" : " in marketplace " + r.marketplace)},
        {"subject fingerprint", fingerprint(r) + " (keyed HMAC; no identifier is kept)"},
        {"Amazon's notice", r.notice_at},
        {"registered", r.registered_at + " by " + r.registered_by + " (" + r.reason + ")"},
        {"live data due by", r.live_deadline},
        {"every copy due by", r.copies_deadline}}});
  Section live{"Live data", {{"erased", r.live_erased_at}}};
  live.lines.push_back({"orders resolved", std::to_string(r.orders_resolved)});
  live.lines.push_back({"orders erased", std::to_string(counts.value("orders_erased", 0LL))});
  for (const auto& [table, n] : counts["rows_erased_by_table"].items()) {
    live.lines.push_back({"rows deleted from " + table, std::to_string(n.get<long long>())});
  }
  c.sections.push_back(live);
  Section copies{"Copies", {}};
  for (const util::Json& cp : util::parse_json(r.copies, "lethe.requests.copies")) {
    std::string kind = cp["kind"];
    std::string id = cp["id"];
    std::optional<store::CopyState> now = store::copy_state(s, kind, id);
    std::string what = !now                        ? "not in the catalog"
                       : now->state == "destroyed" ? "destroyed " + now->destroyed_at
                       : now->state == "cold"      ? "offline in cold storage under the "
                                                     "regulatory hold, retained until " +
                                                    now->retention_until
                                              : now->state;
    copies.lines.push_back({kind + " " + id, what});
  }
  for (const store::RegisteredCopy& rc : store::registered_copies(s, r.id)) {
    copies.lines.push_back(
        {"copy " + std::to_string(rc.no) + " (" + rc.what + ")",
         rc.destroyed_at.empty()
             ? "exists, expires " + rc.expires_at
             : "destroyed " + rc.destroyed_at + " (recorded by " + rc.destroyed_by + ")"});
  }
  if (copies.lines.empty()) {
    copies.lines.push_back({"", "no archive or backup lethe made held these orders"});
  }
  copies.lines.push_back(
      {"dead row versions", r.state == "complete"
                                ? "every table erased from was vacuumed after the erase"
                                : "waiting for VACUUM of the tables erased from"});
  if (!r.completed_at.empty()) {
    copies.lines.push_back({"complete", r.completed_at});
  }
  c.sections.push_back(copies);
  Section evidence{"Evidence (check with `lethe audit verify` and `lethe request ledger verify`)",
                   {}};
  for (const store::RequestEvidence& e : store::request_evidence(s, r.id)) {
    evidence.lines.push_back({"audit record " + std::to_string(e.seq),
                              e.recorded_at + " " + e.kind + "/" + e.exit_reason + " by " +
                                  e.actor + " (role " + e.db_role +
                                  (e.run_id > 0 ? ", run " + std::to_string(e.run_id) : "") +
                                  ") sha256 " + e.hash});
  }
  for (const audit::LedgerEntry& e : audit::ledger_table(s)) {
    util::Json j = util::parse_json(e.entry, "deletion ledger entry");
    if (j.value("request_id", 0LL) == r.id) {
      evidence.lines.push_back({"deletion ledger entry " + std::to_string(e.seq),
                                j.value("erased_at", std::string()) + " sha256 " + e.hash});
    }
  }
  c.sections.push_back(evidence);
  return c;
}

} // namespace

int run_certify(Context& ctx, long long id, const std::string& out, const std::string& format) {
  std::string fmt = format;
  if (fmt.empty()) {
    fmt = out.size() >= 4 && out.substr(out.size() - 4) == ".txt" ? "text" : "html";
  }
  if (fmt != "html" && fmt != "text") {
    throw Error(Exit::usage, "--format must be html or text", "e.g. --format text");
  }
  if (out.empty()) {
    throw Error(Exit::usage, "`lethe request certify` needs --out FILE",
                "e.g. --out request-7.html (or .txt for text)");
  }
  std::optional<store::RequestRow> r = store::find_request(ctx.ready_db(), id, std::nullopt);
  if (!r) {
    throw Error(Exit::usage, "no request " + std::to_string(id), "see `lethe request list`");
  }
  if (r->state != "live_erased" && r->state != "complete") {
    throw Error(Exit::data,
                "request " + std::to_string(id) + " is " + r->state +
                    ": there is no erase to certify yet",
                "run `lethe request run` first; a certificate states only what happened");
  }
  Certificate c = build(ctx, *r);
  util::write_file_atomically(out, fmt == "html" ? as_html(c) : as_text(c), 0640);
  std::cout << "certificate of request " << id << " (" << r->state << ") written to " << out
            << "\n";
  return 0;
}

} // namespace lethe::jobs::request
