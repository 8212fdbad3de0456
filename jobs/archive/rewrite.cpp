// `lethe archive rewrite ID --exclude-request R --private-key K` (C5, C6, C19): a spooled
// archive is a live copy of the orders it holds, so a deletion request whose orders it holds
// stays open until it is gone. Run where the archive private key is, this writes the archive
// anew without the request's orders (same retention, the currently configured recipients),
// records it with its evidence, then destroys the old file. The request's orders are found in
// the archive the way a ledger replay finds them in a restored database: by the keyed HMACs the
// request keeps, never by a stored identifier.
#include "jobs/archive/archive.hpp"
#include "jobs/archive/common.hpp"
#include "jobs/archive/csv.hpp"
#include "jobs/archive/reading.hpp"
#include "worker/archive/tar.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/db/store/requests.hpp"
#include "worker/runtime/locks.hpp"
#include "worker/runtime/run_scope.hpp"
#include "worker/util/faults.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"
#include "worker/util/signals.hpp"

#include <iostream>
#include <map>
#include <set>

namespace lethe::jobs::archive {
namespace {

constexpr const char* k_done = "rewritten";

// Whose orders go: the request's subjects as keyed HMACs (hex), as the ledger keeps them.
struct Subjects {
  std::string kind; // order | buyer | seller
  std::set<std::string> hmacs;
  std::string marketplace; // seller scope: empty for every marketplace
};

// Where a table's columns of interest sit in its CSV records (from part-00001's header).
struct Layout {
  std::vector<std::string> header;
  std::vector<size_t> link;                            // a child's link columns
  std::map<std::string, std::vector<size_t>> referred; // child table -> its parent_column here
  std::vector<size_t> key;                             // the root's key columns
  long subject = -1;                                   // the root's scope column
  long marketplace = -1;
};

struct NewMember {
  std::string name;
  std::string table;
  long long rows = 0;
  std::string sha256;
};

struct Rewrite {
  Rewrite(Context& c, const RewriteOptions& o, Cataloged a, Subjects subj, util::Secret key)
      : ctx(c), opt(o), old(std::move(a)), subjects(std::move(subj)), hmac_key(std::move(key)) {}

  Context& ctx;
  const RewriteOptions& opt;
  Cataloged old;
  Subjects subjects;
  util::Secret hmac_key;
  std::map<std::string, Layout> layouts;
  // Per child table: the tuples of its parent's columns that removed parent rows hold.
  std::map<std::string, std::set<std::vector<std::string>>> removed_refs;
  std::vector<std::vector<std::string>> removed_keys; // root keys of the removed orders
  std::map<std::string, long long> rows_removed;      // by table
  std::map<std::string, long long> rows_kept;         // by table
  std::vector<NewMember> members;
  std::string id;
  std::filesystem::path path;
  vault::Sealed sealed;
  std::string recipients_json;
  db::store::WrittenAs written; // the old archive's as_of and PII map digest, read once
  // Where a failure leaves the new file: before the recording transaction, or refused inside
  // it by lethe's own check, nothing names it and it is removed; otherwise it stays (a commit
  // in doubt may have recorded it), and an unrecorded one is the archive run's orphan.
  bool recording = false;
  bool refused = false;
};

Subjects subjects_of(const db::store::RequestRow& r) {
  Subjects out{r.scope_kind, {}, r.marketplace};
  for (const util::Json& h : util::parse_json(r.subjects, "lethe.requests.subjects")) {
    out.hmacs.insert(h.get<std::string>());
  }
  return out;
}

bool is_subject(const Rewrite& rw, const std::optional<std::string>& v) {
  if (!v) {
    return false;
  }
  if (rw.subjects.hmacs.contains(crypto::hex(crypto::hmac_sha256(rw.hmac_key.view(), *v)))) {
    return true;
  }
  // A buyer column the purge already pseudonymized holds "hmac:" and the same HMAC.
  return rw.subjects.kind == "buyer" && v->starts_with("hmac:") &&
         rw.subjects.hmacs.contains(v->substr(5));
}

[[noreturn]] void cannot(const Rewrite& rw, const std::string& what) {
  throw Error(Exit::data, "archive " + rw.old.id + " " + what + "; nothing was rewritten",
              "rewrite it with the configuration (PII map) it was written with; the archive "
              "stays as it is until then");
}

size_t column_index(const Rewrite& rw, const Layout& l, const std::string& table,
                    const std::string& column) {
  for (size_t i = 0; i < l.header.size(); ++i) {
    if (l.header[i] == column) {
      return i;
    }
  }
  cannot(rw, "has no column " + column + " in table " + table);
}

std::vector<size_t> column_indexes(const Rewrite& rw, const Layout& l, const std::string& table,
                                   const settings::Columns& columns) {
  std::vector<size_t> out;
  for (const std::string& c : columns) {
    out.push_back(column_index(rw, l, table, c));
  }
  return out;
}

// Reads table `t`'s header record and finds the columns the filter needs.
Layout layout_of(const Rewrite& rw, const settings::PiiTable& t, const CsvRecord& header) {
  const settings::Settings& s = rw.ctx.settings();
  Layout l;
  for (const std::optional<std::string>& f : header.fields) {
    l.header.push_back(f.value_or(""));
  }
  if (!t.parent.empty()) {
    l.link = column_indexes(rw, l, t.table, t.link);
  } else {
    l.key = column_indexes(rw, l, t.table, t.key);
    const std::string& column = rw.subjects.kind == "order"   ? t.key.front()
                                : rw.subjects.kind == "buyer" ? s.root.buyer
                                                              : s.root.seller;
    if (column.empty()) {
      cannot(rw, "cannot be matched: the PII map names no " + rw.subjects.kind +
                     " column (pii.root." + rw.subjects.kind + ")");
    }
    l.subject = static_cast<long>(column_index(rw, l, t.table, column));
    if (!rw.subjects.marketplace.empty()) {
      l.marketplace = static_cast<long>(column_index(rw, l, t.table, s.root.marketplace));
    }
  }
  for (const settings::PiiTable* c : s.pii_tables()) {
    if (c->parent == t.table) {
      l.referred[c->table] = column_indexes(rw, l, t.table, c->parent_column);
    }
  }
  return l;
}

std::optional<std::vector<std::string>> values_at(const CsvRecord& r,
                                                  const std::vector<size_t>& at) {
  std::vector<std::string> out;
  for (size_t i : at) {
    if (i >= r.fields.size() || !r.fields[i]) {
      return std::nullopt;
    }
    out.push_back(*r.fields[i]);
  }
  return out;
}

// Whether record `r` of table `t` belongs to one of the request's orders; if so, remembers
// what its children refer to.
bool removed(Rewrite& rw, const settings::PiiTable& t, const Layout& l, const CsvRecord& r) {
  if (r.fields.size() != l.header.size()) {
    cannot(rw, "has a record of table " + t.table + " whose fields do not match its header");
  }
  bool gone = false;
  if (t.parent.empty()) {
    gone = is_subject(rw, r.fields.at(static_cast<size_t>(l.subject)));
    if (gone && l.marketplace >= 0) {
      gone = r.fields.at(static_cast<size_t>(l.marketplace)) == rw.subjects.marketplace;
    }
    if (gone) {
      std::optional<std::vector<std::string>> key = values_at(r, l.key);
      if (!key) {
        cannot(rw, "holds an order whose key is NULL");
      }
      rw.removed_keys.push_back(*key);
    }
  } else {
    std::optional<std::vector<std::string>> link = values_at(r, l.link);
    gone = link && rw.removed_refs[t.table].contains(*link);
  }
  if (gone) {
    for (const auto& [child, at] : l.referred) {
      if (std::optional<std::vector<std::string>> v = values_at(r, at)) {
        rw.removed_refs[child].insert(*v);
      }
    }
  }
  return gone;
}

// Member `name` of table `table` without the request's rows.
std::string filtered(Rewrite& rw, const std::string& name, const std::string& table,
                     const std::string& data) {
  const settings::PiiTable* t = rw.ctx.settings().find_table(table);
  if (t == nullptr || t->strategy == settings::TableStrategy::keep) {
    cannot(rw, "holds table " + table + ", which the PII map does not name");
  }
  if (!t->parent.empty() && !rw.layouts.contains(t->parent)) {
    cannot(rw, "holds table " + table + " before its parent " + t->parent);
  }
  bool first = name.ends_with("/part-00001.csv");
  if (!first && !rw.layouts.contains(table)) {
    cannot(rw, "holds member " + name + " before its table's first part");
  }
  std::string out;
  long long kept = 0;
  bool header = first;
  bool well_formed = for_each_csv_record(data, [&](const CsvRecord& r) {
    if (header) {
      header = false;
      rw.layouts[table] = layout_of(rw, *t, r);
      out.append(r.raw);
      return;
    }
    if (removed(rw, *t, rw.layouts.at(table), r)) {
      ++rw.rows_removed[table];
    } else {
      out.append(r.raw);
      ++kept;
    }
  });
  if (!well_formed) {
    cannot(rw, "has member " + name + " that is not well-formed CSV");
  }
  rw.rows_kept[table] += kept;
  rw.members.push_back({name, table, kept, crypto::hex(crypto::sha256(out))});
  return out;
}

// manifest.json of the new archive: the old one's, with the new id, orders and members, and
// where it came from.
std::string new_manifest(const Rewrite& rw, const std::string& old_manifest, long long orders) {
  util::Json m = util::parse_json(old_manifest, "archive manifest");
  util::Json members = util::Json::array();
  for (const NewMember& nm : rw.members) {
    members.push_back(
        {{"name", nm.name}, {"table", nm.table}, {"rows", nm.rows}, {"sha256", nm.sha256}});
  }
  m["lethe_version"] = LETHE_VERSION;
  m["archive_id"] = rw.id;
  m["orders"] = orders;
  m["members"] = members;
  m["recipients"] = util::parse_json(rw.recipients_json, "recipients");
  m["rewritten_from"] = {{"archive_id", rw.old.id},
                         {"excluded_request", rw.opt.request_id},
                         {"orders_removed", rw.removed_keys.size()}};
  return util::dump(m);
}

// Writes the new archive: every member of the old one without the request's rows (a later
// part left empty is dropped), tables.json as it was, a new manifest.
void write_new(Rewrite& rw, const crypto::RsaKey& key, const Contents& checked) {
  const settings::Settings& s = rw.ctx.settings();
  rw.id = vault::new_id("a");
  rw.path = s.archive.spool_dir / (rw.id + k_archive_suffix);
  Recipients rcpt = load_recipients(s);
  rw.recipients_json = rcpt.json;
  vault::SealedWriter sealed(rw.path, archive_params(rcpt, rw.id, rw.old.retention_until,
                                                     read_header(rw.old.path).source));
  lethe::archive::TarWriter tar([&](const unsigned char* p, size_t n) { sealed.write(p, n); });
  std::string manifest;
  read_verified(rw.ctx.ready_db(), s, rw.old, key, checked, k_done,
                [&](const std::string& name, const std::string& data) {
                  if (name == "manifest.json") {
                    manifest = data;
                  } else if (name == "tables.json") {
                    tar.add(name, data);
                  } else {
                    std::string table = name.substr(0, name.rfind('/'));
                    std::string kept = filtered(rw, name, table, data);
                    if (rw.members.back().rows == 0 && !name.ends_with("/part-00001.csv")) {
                      rw.members.pop_back();
                    } else {
                      tar.add(name, kept);
                    }
                  }
                });
  if (rw.removed_keys.empty()) {
    throw Error(Exit::data,
                "archive " + rw.old.id + " holds no order of request " +
                    std::to_string(rw.opt.request_id) + "; nothing was rewritten",
                "`lethe request show " + std::to_string(rw.opt.request_id) +
                    "` lists the copies that hold the request's orders");
  }
  tar.add(
      "manifest.json",
      new_manifest(rw, manifest, rw.old.orders - static_cast<long long>(rw.removed_keys.size())));
  tar.finish();
  rw.sealed = sealed.finish();
  util::crash_point("rewrite:written");
  sealed.commit();
  vault::check_written(rw.sealed, "archive " + rw.id,
                       "check the spool file system (" + s.archive.spool_dir.string() +
                           "); nothing was recorded and the old archive is untouched");
}

util::Json counts_json(const std::map<std::string, long long>& by_table) {
  util::Json out = util::Json::object();
  for (const auto& [table, n] : by_table) {
    out[table] = n;
  }
  return out;
}

// The new archive's catalog row, its archive_written record (naming the archive it replaces
// and the request) and its orders, in one transaction.
void record_new(Rewrite& rw, runtime::RunScope& run) {
  const settings::Settings& s = rw.ctx.settings();
  long long orders = rw.old.orders - static_cast<long long>(rw.removed_keys.size());
  const db::store::WrittenAs& as = rw.written;
  audit::Stored stored;
  rw.recording = true;
  rw.ctx.ready_db().transact([&](db::Transaction& tx) {
    db::store::KeptOrders k = db::store::orders_kept_by_rewrite(
        tx, rw.old.id, rw.opt.request_id, s.root.table.key, rw.removed_keys, "lethe_rewrite_kept");
    const auto removed = static_cast<long long>(rw.removed_keys.size());
    // What the request's identifiers matched in the file must be exactly the request's
    // resolved orders the catalog lists for this archive: an order synced after the request
    // was registered, or one whose identifier changed, is not the request's to remove.
    if (k.kept != orders || k.removed_listed != removed || k.removed_requested != removed ||
        k.requested_listed != removed) {
      rw.refused = true;
      throw Error(Exit::data,
                  "archive " + rw.old.id + ": the request's identifiers match " +
                      std::to_string(removed) + " orders in the file, of which the catalog lists " +
                      std::to_string(k.removed_listed) + " and the request resolved " +
                      std::to_string(k.removed_requested) + "; the catalog lists " +
                      std::to_string(k.requested_listed) +
                      " of the request's orders in this archive; nothing was recorded",
                  "the file, lethe.archived_orders and the request disagree: run `lethe archive "
                  "verify --read-data`, compare `lethe request show " +
                      std::to_string(rw.opt.request_id) +
                      "`, and keep the file for the incident record (C18)");
    }
    db::store::insert_archive(tx,
                              {rw.id, run.id(), rw.path.string(), rw.sealed.size, rw.sealed.sha256,
                               as.as_of, rw.old.retention_until, as.pii_map_digest,
                               rw.recipients_json, util::dump(counts_json(rw.rows_kept)), orders});
    stored = rw.ctx.trail().append_in(
        tx, audit::Record{audit::Kind::manual, "archive rewrite", "recorded", "archive_written",
                          run.id(),
                          util::dump({{"orders", orders},
                                      {"bytes", static_cast<long long>(rw.sealed.size)},
                                      {"members", static_cast<long>(rw.members.size())},
                                      {"orders_removed", rw.removed_keys.size()},
                                      {"rows_removed", counts_json(rw.rows_removed)}}),
                          util::dump({{"archive_id", rw.id},
                                      {"sha256", rw.sealed.sha256},
                                      {"retention_until", rw.old.retention_until},
                                      {"rewritten_from", rw.old.id},
                                      {"excluded_request", std::to_string(rw.opt.request_id)},
                                      {"reason", rw.opt.reason}})});
    db::store::record_archived_orders(tx, rw.id, stored.seq, "pg_temp.lethe_rewrite_kept");
  });
  rw.ctx.trail().anchor(stored);
  util::crash_point("rewrite:recorded");
}

// Destroys the old archive, recorded as replaced by `new_id` (lethe.archive_set_state checks
// the replacement keeps the hold).
void destroy_old(Context& ctx, const Cataloged& old, const std::string& new_id,
                 const RewriteOptions& opt) {
  // A rerun after a crash between the unlink and the commit finds the file gone: the record
  // says so, and the destruction is recorded all the same. Only when the replacement's file is
  // there beside it, so a spool that is not mounted (or not readable) is never taken for that.
  std::error_code ec;
  bool absent = !std::filesystem::exists(old.path, ec);
  if (absent) {
    std::error_code ec2;
    std::filesystem::path replacement = find_archive(ctx.ready_db(), new_id).path;
    if (ec || !std::filesystem::exists(replacement, ec2) ||
        std::filesystem::canonical(replacement.parent_path(), ec2) !=
            std::filesystem::canonical(std::filesystem::path(old.path).parent_path(), ec2)) {
      throw Error(Exit::io,
                  "archive " + old.id + "'s file " + old.path +
                      " cannot be found, and its replacement " + new_id +
                      " is not there beside it; nothing was recorded",
                  "check that the spool is mounted and readable; if the file was moved off "
                  "this host, destroy it there and keep the record of that for the incident "
                  "record (C18)");
    }
  }
  destroy_recorded(ctx, old,
                   audit::Record{audit::Kind::manual, "archive rewrite", "done", "destroyed",
                                 std::nullopt,
                                 util::dump({{"bytes", static_cast<long long>(old.size)}}),
                                 util::dump({{"archive_id", old.id},
                                             {"from", old.state},
                                             {"replaced_by", new_id},
                                             {"excluded_request", std::to_string(opt.request_id)},
                                             {"retention_until", old.retention_until},
                                             {"file_absent", absent}})},
                   "lethe archive rewrite " + old.id + " --exclude-request " +
                       std::to_string(opt.request_id) + " --private-key KEY",
                   absent ? FileState::absent : FileState::present);
}

db::store::RequestRow executed_request(Context& ctx, long long id) {
  std::optional<db::store::RequestRow> r = db::store::find_request(ctx.ready_db(), id, {});
  if (!r) {
    throw Error(Exit::usage, "no request " + std::to_string(id), "see `lethe request list`");
  }
  if (r->state != "live_erased" && r->state != "complete") {
    throw Error(Exit::data,
                "request " + std::to_string(id) + " is " + r->state +
                    ": only a request whose live rows are erased has its archives rewritten",
                r->state == "cancelled" ? std::string("a cancelled request keeps no copy open")
                                        : "run `lethe request run` first; a held order is "
                                          "archived before the request erases it");
  }
  return *r;
}

void require(bool ok, const char* what, const char* hint) {
  if (!ok) {
    throw Error(Exit::usage, what, hint);
  }
}

} // namespace

int run_rewrite(Context& ctx, const RewriteOptions& opt) {
  require(!opt.operator_name.empty(), "archive rewrite needs --operator NAME",
          "a rewrite destroys an archive: the audit trail records who did it");
  require(!opt.reason.empty(), "--reason is required",
          "say why, e.g. --reason 'Amazon deletion notice 12345'");
  require(opt.request_id > 0, "--exclude-request ID is required",
          "`lethe request list` shows the requests");
  require(!opt.private_key.empty(), "--private-key KEY is required",
          "the archive private key, kept at the offline station");
  if (ctx.settings().hmac_key_file.empty()) {
    throw Error(Exit::config, "pii.hmac_key_file is not set",
                "the request's orders are found by keyed HMACs: set it to the key the requests "
                "were registered with");
  }
  util::install_stop_handlers();
  runtime::lock_pii_writers(ctx, "archive"); // the archive run must not take our file as orphan
  db::store::RequestRow request = executed_request(ctx, opt.request_id);
  Cataloged old = find_archive(ctx.ready_db(), opt.archive_id);
  // A crash after the new archive was recorded: the old one is destroyed now, nothing written.
  if (std::optional<db::store::Rewritten> done = db::store::rewritten_as(ctx.ready_db(), old.id)) {
    if (done->request_id != opt.request_id) {
      throw Error(Exit::data,
                  "archive " + old.id + " was rewritten as " + done->archive_id +
                      " without request " + std::to_string(done->request_id) + "'s orders" +
                      (old.state == "spooled" ? " by a run that did not finish" : ""),
                  (old.state == "spooled"
                       ? "finish it with `lethe archive rewrite " + old.id + " --exclude-request " +
                             std::to_string(done->request_id) + "`, then rewrite "
                       : std::string("rewrite ")) +
                      done->archive_id + " --exclude-request " + std::to_string(opt.request_id));
    }
    if (old.state == "spooled") {
      destroy_old(ctx, old, done->archive_id, opt);
      std::cout << "archive " << old.id << " was rewritten as " << done->archive_id
                << " by an earlier run; the old one is destroyed now\n";
      return 0;
    }
    std::cout << "archive " << old.id << " was rewritten as " << done->archive_id << " already ("
              << old.state << "); nothing to do\n";
    return 0;
  }
  if (old.state != "spooled") {
    throw Error(Exit::data, "archive " + old.id + " is " + old.state + ", not spooled",
                old.state == "cold" ? "an archive in cold storage is retained offline under the "
                                      "hold; the request's certificate lists it"
                                    : "a destroyed archive holds nothing");
  }
  if (db::store::request_orders_in_archive(ctx.ready_db(), opt.request_id, old.id) == 0) {
    throw Error(Exit::data,
                "the catalog lists no order of request " + std::to_string(opt.request_id) +
                    " in archive " + old.id + "; nothing was rewritten",
                request.state == "complete"
                    ? std::string("the request is complete: its order keys are no longer kept")
                    : "`lethe request show " + std::to_string(opt.request_id) +
                          "` lists the copies that hold the request's orders");
  }
  // The rows are told apart by the map's tables and links: only the map they were written with.
  db::store::WrittenAs written = db::store::written_as(ctx.ready_db(), old.id);
  if (written.pii_map_digest != settings::pii_map_digest(ctx.settings())) {
    throw Error(Exit::config,
                "archive " + old.id +
                    " was written with another PII map than this "
                    "configuration's; nothing was rewritten",
                "run the rewrite with the configuration the archive was written with");
  }
  if (std::string problem = evidence_problem(ctx.ready_db(), facts_of(old), ReadFile::yes);
      !problem.empty()) {
    throw Error(Exit::data, "archive " + problem + "; nothing was rewritten",
                "keep the file for the incident record (C18); `lethe archive verify` says more");
  }
  crypto::RsaKey key = crypto::load_private_key(opt.private_key);
  Rewrite rw(ctx, opt, old, subjects_of(request),
             util::read_secret_file(ctx.settings().hmac_key_file, "hmac key"));
  rw.written = written;
  runtime::RunScope run(ctx,
                        util::dump({{"archive_id", old.id}, {"excluded_request", opt.request_id}}));
  return run.watch([&] {
    Contents checked = verify_contents(ctx.ready_db(), ctx.settings(), old, key, k_done);
    try {
      write_new(rw, key, checked);
      record_new(rw, run);
    } catch (...) {
      if ((!rw.recording || rw.refused) && !rw.path.empty()) {
        std::error_code ec;
        std::filesystem::remove(rw.path, ec);
      }
      throw;
    }
    destroy_old(ctx, old, rw.id, opt);
    long long removed_rows = 0;
    for (const auto& [table, n] : rw.rows_removed) {
      removed_rows += n;
    }
    run.finish(runtime::Outcome::done, k_done,
               util::dump({{"orders_removed", rw.removed_keys.size()},
                           {"rows_removed", removed_rows},
                           {"bytes", static_cast<long long>(rw.sealed.size)}}),
               util::dump({{"archive_id", rw.id},
                           {"rewritten_from", old.id},
                           {"excluded_request", std::to_string(opt.request_id)}}));
    std::cout << "archive " << old.id << " rewritten as " << rw.id << " without request "
              << opt.request_id << "'s " << rw.removed_keys.size() << " orders (" << removed_rows
              << " rows); " << old.orders - static_cast<long long>(rw.removed_keys.size())
              << " orders kept until " << old.retention_until << "; " << old.id << " destroyed\n  "
              << rw.path.string() << "\n  the next `lethe request run` completes request "
              << opt.request_id << " if no other copy is left\n";
    return 0;
  });
}

} // namespace lethe::jobs::archive
