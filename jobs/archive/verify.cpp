// `lethe archive verify`: every archive against its catalog row and audit evidence, and with a
// private key its members against its manifest.
#include "jobs/archive/archive.hpp"
#include "jobs/archive/common.hpp"
#include "jobs/archive/manifest.hpp"
#include "jobs/archive/reading.hpp"
#include "worker/archive/tar.hpp"
#include "worker/crypto/hash.hpp"
#include "worker/log/log.hpp"
#include "worker/runtime/runs.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"
#include "worker/util/signals.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sys/stat.h>
#include <unistd.h>

namespace lethe::jobs::archive {
namespace {

// What is wrong with the orders the catalog releases from their hold: an archive whose
// archived_orders do not number its `orders`, or that has no evidence, and archived_orders rows
// naming an archive that is not cataloged with its evidence (the held test ignores those, but
// someone wrote them outside lethe.archive_orders). Names archives and counts, never an order.
std::vector<std::string> archived_orders_problems(db::Session& s) {
  std::vector<std::string> out;
  for (const db::store::OrdersMismatch& m : db::store::archived_orders_mismatches(s)) {
    out.push_back(m.id + (m.no_evidence ? ": the catalog row names no evidence"
                                        : ": the catalog says " + m.orders +
                                              " orders, archived_orders lists " + m.listed));
  }
  for (const auto& [id, rows] : db::store::stray_archived_orders(s)) {
    out.push_back(id + ": " + rows +
                  " archived_orders row(s) name an archive not cataloged with its evidence");
  }
  return out;
}

// What is wrong with spooled archive `a`'s members against its manifest, read with `key`,
// appended to `problems`. Returns false when the archive could not be read through (a key that
// does not fit, counted in `key_mismatches`; a damaged file; no manifest).
bool check_contents(Context& ctx, const Cataloged& a, const crypto::RsaKey& key,
                    std::vector<std::string>& problems, size_t& key_mismatches) {
  std::map<std::string, MemberFacts> seen;
  std::string manifest;
  try {
    read_archive(ctx.ready_db(), ctx.settings(), a.path, a.id, key,
                 [&](const std::string& name, const std::string& data) {
                   if (name == "manifest.json") {
                     manifest = data;
                     return;
                   }
                   CsvCounter rows;
                   rows.feed(data);
                   seen[name] = {crypto::hex(crypto::sha256(data)), rows.lines};
                 });
  } catch (const KeyMismatch& e) {
    problems.push_back(a.id + ": " + e.what());
    ++key_mismatches;
    return false;
  } catch (const Error& e) {
    problems.push_back(a.id + ": " + e.what());
    return false;
  }
  std::optional<std::vector<ManifestMember>> members = manifest_members(manifest);
  if (manifest.empty() || !members || members->empty()) {
    problems.push_back(a.id + ": no manifest");
    return false;
  }
  for (const ManifestMember& mm : *members) {
    auto it = seen.find(mm.name);
    long long header = mm.first_part ? 1 : 0;
    if (it == seen.end()) {
      problems.push_back(a.id + ": member " + mm.name + " is missing");
    } else if (it->second.sha256 != mm.sha256 || it->second.rows - header != mm.rows) {
      problems.push_back(a.id + ": member " + mm.name + " differs from the manifest");
    }
  }
  return true;
}

// What `archive verify` found.
struct VerifyTally {
  long long checked = 0;
  long long cold = 0;
  long long not_reached = 0;
  std::vector<std::string> problems;
  size_t key_mismatches = 0; // problems that are the key's, not the files'
};

// Records the verification (an alarm when anything is wrong), prints it, and refuses with the
// right HINT when something failed.
int report(Context& ctx, const VerifyOptions& opt, const VerifyTally& t) {
  std::string counts = util::dump({{"checked", t.checked},
                                   {"cold", t.cold},
                                   {"not_reached", t.not_reached},
                                   {"problems", static_cast<long>(t.problems.size())},
                                   {"read_data", opt.read_data}});
  bool ok = t.problems.empty();
  bool only_keys = !ok && t.key_mismatches == t.problems.size();
  ctx.record(audit::Record{ok ? audit::Kind::run : audit::Kind::alarm, "archive verify",
                           ok ? "done" : "failed",
                           ok          ? "verified"
                           : only_keys ? "key_mismatch"
                                       : "archive_damaged",
                           std::nullopt, counts, util::dump({{"problems", t.problems}})});
  if (opt.json) {
    std::cout << util::dump({{"ok", ok},
                             {"checked", t.checked},
                             {"cold", t.cold},
                             {"not_reached", t.not_reached},
                             {"problems", t.problems}})
              << "\n";
  } else {
    std::cout << "archives verified: " << t.checked << (opt.read_data ? " (contents read)" : "")
              << ", in cold storage: " << t.cold
              << ", not reached in the time budget: " << t.not_reached << "\n";
    for (const std::string& p : t.problems) {
      std::cout << "  problem: " << p << "\n";
    }
  }
  if (only_keys) {
    throw Error(Exit::data,
                "the private key does not fit " + std::to_string(t.problems.size()) +
                    " archive(s); their files were not found damaged",
                "pass --private-key with the private half of the public key each problem line "
                "names");
  }
  if (!ok) {
    throw Error(Exit::data, std::to_string(t.problems.size()) + " archive(s) failed verification",
                "restore the damaged file from its other copy, or re-archive before the live PII "
                "is gone; see `lethe archive list`");
  }
  return 0;
}

} // namespace

int run_verify(Context& ctx, const VerifyOptions& opt) {
  db::Session& s = ctx.ready_db();
  std::vector<Cataloged> all = db::store::archives(s);
  std::optional<crypto::RsaKey> key;
  if (opt.read_data) {
    if (opt.private_key.empty()) {
      throw Error(Exit::usage, "--read-data needs --private-key", "pass the archive private key");
    }
    key = crypto::load_private_key(opt.private_key);
  }
  auto started = std::chrono::steady_clock::now();
  VerifyTally t;
  t.problems = archived_orders_problems(s);
  for (size_t i = 0; i < all.size(); ++i) {
    const Cataloged& a = all[i];
    if (opt.subset_count > 0 &&
        static_cast<int>(i % static_cast<size_t>(opt.subset_count)) != opt.subset_index - 1) {
      continue;
    }
    double spent =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (opt.max_duration_s > 0 && spent > static_cast<double>(opt.max_duration_s)) {
      ++t.not_reached;
      continue;
    }
    // The catalog is checked against the audit chain, not only against itself: its length,
    // SHA-256 and state must be what the audit records say.
    std::string problem =
        evidence_problem(s, facts_of(a), a.state == "spooled" ? ReadFile::yes : ReadFile::no);
    if (!problem.empty()) {
      t.problems.push_back(problem);
      continue;
    }
    if (a.state != "spooled") {
      t.cold += a.state == "cold" ? 1 : 0;
      continue;
    }
    if (key && !check_contents(ctx, a, *key, t.problems, t.key_mismatches)) {
      continue;
    }
    db::store::touch_archive(s, a.id);
    ++t.checked;
  }
  return report(ctx, opt, t);
}

} // namespace lethe::jobs::archive
