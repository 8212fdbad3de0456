// Job locks: session advisory locks that keep jobs which must not overlap apart.
#pragma once

#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::runtime {

// Takes the lock every job that changes PII shares (purge, archive; deletion requests next),
// held by the context's session until it ends. When another run holds it, writes an audited
// refusal naming `job` and throws Error(temporary, 75).
void lock_pii_writers(Context& ctx, const std::string& job);

} // namespace lethe::runtime
