#pragma once

#include "worker/runtime/context.hpp"

namespace lethe::jobs::audit {

// `lethe audit verify`: 0 when the chain and anchor agree; Error(data) naming the first break.
int run_verify(Context& ctx, bool json);

// `lethe audit show`: prints records oldest first.
int run_show(Context& ctx, long long limit, const std::string& job, bool json);

// `lethe audit reanchor`: after a lost or hand-edited anchor file, records who
// (`operator_name`) re-anchors and why (`reason`) and starts a new anchor file at that record.
int run_reanchor(Context& ctx, const std::string& operator_name, const std::string& reason);

} // namespace lethe::jobs::audit
