// Regulatory cold archives (C2, C6, C7, C10): held orders whose PII is due are copied into an
// encrypted archive (tar + zstd inside an AWS Encryption SDK message, to public keys only)
// before their PII leaves the live database.
#pragma once

#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::jobs::archive {

struct RunOptions {
  std::string as_of; // empty: the database's now()
  bool json = false;
};

// `lethe archive run`: discard orphans, archive held due orders, record, then sanitize them.
int run_archive(Context& ctx, const RunOptions& opt);

struct VerifyOptions {
  std::string private_key; // with --read-data
  bool read_data = false;
  long max_duration_s = 0; // 0: no budget
  int subset_index = 0;    // --subset K/N: this is K (1-based); 0: all
  int subset_count = 0;
  bool json = false;
};

// `lethe archive verify`: presence, length and SHA-256 of every cataloged archive; with
// --read-data, decrypts and checks every member against the manifest.
int run_verify(Context& ctx, const VerifyOptions& opt);

struct RestoreOptions {
  std::string archive_id;
  std::string private_key;
  std::string reason;
  std::string into_dir;
  std::string into_schema;
};

// `lethe archive restore`: members to a directory (0600) or a scratch schema; audited.
int run_restore(Context& ctx, const RestoreOptions& opt);

struct RewriteOptions {
  std::string archive_id;
  long long request_id = 0;
  std::string private_key;
  std::string operator_name;
  std::string reason;
};

// `lethe archive rewrite`: writes spooled archive ARCHIVE anew without a deletion request's
// orders, records it, destroys the old file; audited with the operator.
int run_rewrite(Context& ctx, const RewriteOptions& opt);

// `lethe archive list`.
int run_list(Context& ctx, bool json);

// `lethe archive expire`: destroys archives past retention-until.
int run_expire(Context& ctx, const std::string& as_of);

// `lethe archive mark-cold ID` / `lethe archive mark-destroyed ID`: the operator moved the file
// to cold storage, or destroyed it there.
int run_mark(Context& ctx, const std::string& archive_id, const std::string& state);

} // namespace lethe::jobs::archive
