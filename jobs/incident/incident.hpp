// Incidents (C18): opened by every alarm record (schema 10's trigger) or by an operator, each with
// the 24-hour clock to inform Amazon. Operators acknowledge, record the notice (when and how),
// add investigation and remediation notes, and close; each change is an audit record naming the
// operator, written in the transaction of the change. Free text that quotes a value of a PII
// column is refused before anything is written.
#pragma once

#include "worker/runtime/context.hpp"

#include <string>

namespace lethe::jobs::incident {

struct Change {
  long long id = 0; // 0 for open
  std::string operator_name;
  std::string text;            // open/close: the reason; note: the note; notify: the channel
  std::string type;            // open: the incident type
  std::string at;              // notify: when Amazon was told (empty: now)
  bool remediation = false;    // note: a remediation, not an investigation note
  bool no_notice_owed = false; // close: without a notice
};

int run_list(Context& ctx, bool all, bool json);
int run_show(Context& ctx, long long id, bool json);
int run_open(Context& ctx, const Change& c);
int run_ack(Context& ctx, const Change& c);
int run_notify(Context& ctx, const Change& c);
int run_note(Context& ctx, const Change& c);
int run_close(Context& ctx, const Change& c);

} // namespace lethe::jobs::incident
