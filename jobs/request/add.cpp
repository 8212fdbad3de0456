// `lethe request add`: registers Amazon's notice, resolved at once to the orders it names (the
// only moment lethe holds a buyer's identifier in clear), and `lethe request cancel`.
#include "jobs/request/common.hpp"
#include "jobs/request/request.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/crypto/keys.hpp"
#include "worker/db/clock.hpp"
#include "worker/db/store/requests.hpp"
#include "worker/log/log.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <iostream>

namespace lethe::jobs::request {
namespace {

namespace store = db::store;

void require_who_and_why(const std::string& command, const std::string& operator_name,
                         const std::string& reason) {
  if (operator_name.empty() || reason.empty()) {
    throw Error(Exit::usage, "`lethe " + command + "` needs --operator NAME and --reason TEXT",
                "say who acts on Amazon's notice and why (never PII); both go into the audit "
                "trail");
  }
}

void check_ref(const std::string& ref) {
  bool ok = !ref.empty() && ref.size() <= 100 && std::all_of(ref.begin(), ref.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           c == ':' || c == '/' || c == '#';
  });
  if (!ok) {
    throw Error(Exit::usage, "--amazon-ref must be Amazon's reference for the notice",
                "1 to 100 letters, digits and - _ . : / #, e.g. the case id of Amazon's message");
  }
}

Scope read_scope(const AddOptions& opt) {
  if (opt.scope.empty() == opt.scope_file.empty()) {
    throw Error(Exit::usage, "give the request's subjects with one of --scope or --scope-file",
                "--scope order:ID[,ID...] | buyer:- | seller:SELLER_ID[/MARKETPLACE_ID]; a "
                "buyer's email comes from standard input (buyer:-) or --scope-file FILE (0600)");
  }
  if (!opt.scope_file.empty()) {
    util::Secret text = util::read_secret_file(opt.scope_file, "request scope file");
    return parse_scope(std::string(text.view()), "--scope-file");
  }
  if (opt.scope.rfind("buyer:", 0) == 0) {
    if (opt.scope != "buyer:-") {
      throw Error(Exit::usage,
                  "a buyer's email is not taken from the command line, where ps, shell history "
                  "and the journal keep it",
                  "use --scope buyer:- and write the email to standard input, or --scope-file "
                  "FILE (owner-only) holding buyer:EMAIL");
    }
    std::string line;
    std::getline(std::cin, line);
    std::string text = "buyer:" + line;
    std::fill(line.begin(), line.end(), '\0');
    Scope sc = parse_scope(text, "standard input");
    std::fill(text.begin(), text.end(), '\0');
    return sc;
  }
  return parse_scope(opt.scope, "--scope");
}

std::string hmac_hex(const util::Secret& key, const std::string& value) {
  return crypto::hex(crypto::hmac_sha256(key.view(), value));
}

// The keyed HMACs of the identifiers the scope names (what the request and the ledger keep).
util::Json subjects_of(const Scope& sc, const util::Secret& key) {
  util::Json out = util::Json::array();
  if (sc.kind == "order") {
    for (const std::string& id : sc.order_ids) {
      out.push_back(hmac_hex(key, id));
    }
  } else if (sc.kind == "buyer") {
    out.push_back(hmac_hex(key, sc.buyer));
  } else {
    out.push_back(hmac_hex(key, sc.seller));
  }
  return out;
}

// The refusal of a scope that resolved to nothing or to more than requests.max_orders, unless
// the operator confirmed exactly that count; nullopt when it may be registered.
std::optional<Error> count_refusal(Context& ctx, const AddOptions& opt, const Scope& sc,
                                   long long n) {
  long long limit = ctx.settings().requests.max_orders;
  if (opt.confirm_count) {
    if (*opt.confirm_count == n) {
      return std::nullopt;
    }
    return Error(Exit::data,
                 "--confirm-count " + std::to_string(*opt.confirm_count) + " does not match the " +
                     std::to_string(n) + " orders the scope resolves to; nothing was registered",
                 "check the scope, then confirm the count it resolves to");
  }
  std::string why;
  if (n == 0) {
    why = "the " + sc.kind + " scope resolves to no order";
  } else if (n > limit) {
    why = "the " + sc.kind + " scope resolves to " + std::to_string(n) +
          " orders, above requests.max_orders = " + std::to_string(limit);
  } else {
    return std::nullopt;
  }
  return Error(Exit::data, why + "; nothing was registered",
               "check the identifiers; to register it as it is, run the same command with "
               "--confirm-count " +
                   std::to_string(n) + " (recorded in the audit trail)");
}

} // namespace

int run_add(Context& ctx, const AddOptions& opt) {
  require_who_and_why("request add", opt.operator_name, opt.reason);
  check_ref(opt.amazon_ref);
  if (opt.action != "delete" && opt.action != "return") {
    throw Error(Exit::usage, "--action must be delete or return", "e.g. --action delete");
  }
  std::string return_to;
  std::string return_key_sha256;
  if (opt.action == "return") {
    if (opt.return_to.empty()) {
      throw Error(Exit::usage, "--action return needs --return-to PUB.pem",
                  "the RSA public key (3072 or 4096 bits) the data is encrypted to for Amazon");
    }
    if (ctx.settings().root.table.key.size() != 1) {
      throw Error(Exit::config, "--action return needs a one-column order key",
                  "return the data by other means and register the deletion with --action "
                  "delete");
    }
    crypto::load_public_key(opt.return_to); // refuses what is not an RSA 3072/4096 public key
    return_to = std::filesystem::absolute(opt.return_to).string();
    return_key_sha256 = crypto::hex(crypto::sha256(util::read_file(opt.return_to)));
  } else if (!opt.return_to.empty()) {
    throw Error(Exit::usage, "--return-to is only for --action return", "drop --return-to");
  }
  Scope sc = read_scope(opt);
  util::Secret key = request_key(ctx.settings());
  util::Json subjects = subjects_of(sc, key);
  store::ScopeValues values;
  values.order_ids = sc.order_ids;
  values.seller = sc.seller;
  values.marketplace = sc.marketplace;
  if (sc.kind == "buyer") {
    values.buyer = sc.buyer;
    values.buyer_pseudonym = "hmac:" + subjects[0].get<std::string>();
  }
  db::Session& s = ctx.ready_db();
  db::Instant notice = db::resolve_instant(s, opt.notice_at, "--notice-at");
  if (notice.future) {
    throw Error(Exit::usage, "--notice-at " + notice.iso + " is in the future",
                "give the time Amazon's notice was sent (default: now)");
  }
  long long id = 0;
  long long n = 0;
  std::optional<audit::Stored> stored;
  std::optional<Error> refusal;
  std::string fingerprint = subjects[0].get<std::string>().substr(0, 12);
  {
    db::Transaction tx(s); // rolled back unless committed: a refusal registers nothing
    if (std::optional<store::RequestRow> other = store::open_request_by_ref(tx, opt.amazon_ref)) {
      throw Error(Exit::data,
                  "request " + std::to_string(other->id) + " already has Amazon reference " +
                      opt.amazon_ref + " (" + other->state + ")",
                  "see `lethe request show " + std::to_string(other->id) +
                      "`; if it was registered wrongly, `lethe request cancel` it first");
    }
    id = store::insert_request(tx, {opt.amazon_ref, opt.action, sc.kind, util::dump(subjects),
                                    sc.marketplace, notice.iso, opt.operator_name, opt.reason,
                                    return_to, return_key_sha256});
    n = store::resolve_scope(tx, ctx.settings(), id, sc.kind, values);
    std::fill(values.buyer.begin(), values.buyer.end(), '\0');
    std::fill(values.buyer_pseudonym.begin(), values.buyer_pseudonym.end(), '\0');
    refusal = count_refusal(ctx, opt, sc, n);
    if (!refusal) {
      stored = ctx.trail().append_in(
          tx, audit::Record{audit::Kind::manual, "request", "done", "registered", std::nullopt,
                            util::dump({{"orders_resolved", n}}),
                            util::dump({{"request_id", id},
                                        {"amazon_ref", opt.amazon_ref},
                                        {"action", opt.action},
                                        {"scope", sc.kind},
                                        {"subject_fingerprint", fingerprint},
                                        {"notice_at", notice.iso},
                                        {"confirmed_count", opt.confirm_count.has_value()},
                                        {"reason", opt.reason}})});
      // More requests in a day than the seller expects is an alarm (C15), in the same
      // transaction; the closing anchor line covers both records.
      long long today = store::requests_registered_last_day(tx);
      if (today > ctx.settings().alarms.requests_per_day) {
        stored = ctx.trail().append_in(
            tx, audit::Record{
                    audit::Kind::alarm, "request", "anomaly", "requests_per_day", std::nullopt,
                    util::dump({{"registered_last_24h", today},
                                {"requests_per_day", ctx.settings().alarms.requests_per_day}}),
                    util::dump({{"request_id", id}})});
        log::event(log::Level::warning, "request.rate_alarm", {{"registered_last_24h", today}});
      }
      tx.commit();
    }
  }
  if (refusal) {
    ctx.record(audit::Record{audit::Kind::refusal, "request", "refused", "scope_count",
                             std::nullopt, util::dump({{"orders_resolved", n}}),
                             util::dump({{"amazon_ref", opt.amazon_ref}, {"scope", sc.kind}})});
    throw *refusal;
  }
  ctx.trail().anchor(*stored);
  std::optional<store::RequestRow> row = store::find_request(s, id, std::nullopt);
  print_registered(*row, opt.json);
  return 0;
}

int run_cancel(Context& ctx, long long id, const std::string& operator_name,
               const std::string& reason) {
  require_who_and_why("request cancel", operator_name, reason);
  db::Session& s = ctx.ready_db();
  std::optional<store::RequestRow> row = store::find_request(s, id, std::nullopt);
  if (!row) {
    throw Error(Exit::usage, "no request " + std::to_string(id), "see `lethe request list`");
  }
  if (row->state != "received") {
    throw Error(Exit::data,
                "request " + std::to_string(id) + " is " + row->state +
                    ": only a request that has not run can be cancelled",
                "an erase that began is finished by `lethe request run`; its record stays");
  }
  std::optional<audit::Stored> stored;
  s.transact([&](db::Transaction& tx) {
    if (!store::cancel_request(tx, id, operator_name)) {
      throw Error(Exit::temporary, "request " + std::to_string(id) + " began to run meanwhile",
                  "see `lethe request show " + std::to_string(id) + "`");
    }
    stored = ctx.trail().append_in(
        tx,
        audit::Record{
            audit::Kind::manual, "request", "done", "cancelled", std::nullopt, "{}",
            util::dump({{"request_id", id}, {"amazon_ref", row->amazon_ref}, {"reason", reason}})});
  });
  ctx.trail().anchor(*stored);
  std::cout << "request " << id << " (" << row->amazon_ref << ") cancelled by " << operator_name
            << "\n";
  return 0;
}

int run_copy_add(Context& ctx, long long id, const std::string& what, const std::string& expires_at,
                 const std::string& operator_name) {
  require_who_and_why("request copy add", operator_name, what);
  if (expires_at.empty()) {
    throw Error(Exit::usage, "`lethe request copy add` needs --expires-at TIME",
                "when the copy will be destroyed (a WAL archive's retention, an export's end)");
  }
  db::Session& s = ctx.ready_db();
  std::string expires = db::resolve_instant(s, expires_at, "--expires-at").iso;
  std::optional<store::RequestRow> row = store::find_request(s, id, std::nullopt);
  if (!row) {
    throw Error(Exit::usage, "no request " + std::to_string(id), "see `lethe request list`");
  }
  if (row->state == "cancelled" || row->state == "complete") {
    throw Error(Exit::data, "request " + std::to_string(id) + " is " + row->state,
                "a copy is registered for a request that is still open");
  }
  int no = 0;
  bool late = false;
  std::optional<audit::Stored> stored;
  s.transact([&](db::Transaction& tx) {
    no = store::add_registered_copy(tx, id, what, expires, operator_name);
    late = tx.exec("SELECT $1::timestamptz > $2::timestamptz", {expires, row->copies_deadline})
               .text(0, 0) == "t";
    // A copy that would outlive the 90 days is an alarm now, not on day 89.
    stored = ctx.trail().append_in(
        tx, audit::Record{late ? audit::Kind::alarm : audit::Kind::manual, "request", "done",
                          late ? "copy_outlives_deadline" : "copy_registered", std::nullopt, "{}",
                          util::dump({{"request_id", id},
                                      {"copy", no},
                                      {"what", what},
                                      {"expires_at", expires},
                                      {"deadline", row->copies_deadline}})});
  });
  ctx.trail().anchor(*stored);
  std::cout << "request " << id << ": copy " << no << " registered (" << what << "), expires "
            << expires << "\n";
  if (late) {
    std::cerr << "lethe: warning: copy " << no << " expires after the request's 90-day deadline "
              << row->copies_deadline << " (an alarm record was written)\n"
              << "HINT: destroy it earlier and record that with `lethe request copy destroyed "
              << id << " --copy " << no << "`\n";
  }
  return 0;
}

int run_copy_destroyed(Context& ctx, long long id, int no, const std::string& operator_name,
                       const std::string& reason) {
  require_who_and_why("request copy destroyed", operator_name, reason);
  std::optional<audit::Stored> stored;
  ctx.ready_db().transact([&](db::Transaction& tx) {
    if (!store::destroy_registered_copy(tx, id, no, operator_name)) {
      throw Error(Exit::usage,
                  "request " + std::to_string(id) + " has no copy " + std::to_string(no) +
                      " that still exists",
                  "see `lethe request show " + std::to_string(id) + "`");
    }
    stored = ctx.trail().append_in(
        tx,
        audit::Record{audit::Kind::manual, "request", "done", "copy_destroyed", std::nullopt, "{}",
                      util::dump({{"request_id", id}, {"copy", no}, {"reason", reason}})});
  });
  ctx.trail().anchor(*stored);
  std::cout << "request " << id << ": copy " << no << " recorded as destroyed by " << operator_name
            << "\n";
  return 0;
}

} // namespace lethe::jobs::request
