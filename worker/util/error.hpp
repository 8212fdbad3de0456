// Errors that end a command: a message, where it happened, a hint for the fix and the
// sysexits code a systemd unit or an operator can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace lethe {

// sysexits(3) codes; a unit's RestartPreventExitStatus= and an operator read these.
enum class Exit : int {
  ok = 0,
  failure = 1,      // the check ran and found a violation (e.g. overdue PII)
  usage = 64,       // EX_USAGE
  data = 65,        // EX_DATAERR: bad input data, safety limit
  unavailable = 69, // EX_UNAVAILABLE: server unreachable, TLS refused
  internal = 70,    // EX_SOFTWARE
  cant_create = 73, // EX_CANTCREAT
  io = 74,          // EX_IOERR
  temporary = 75,   // EX_TEMPFAIL: lock held, retry later
  permission = 77,  // EX_NOPERM
  config = 78,      // EX_CONFIG
};

// A failure that ends the command. `what()` never contains a PII value.
class Error : public std::runtime_error {
public:
  Error(Exit code, std::string message, std::string hint = {}, std::string where = {})
      : std::runtime_error(std::move(message)), m_code(code), m_hint(std::move(hint)),
        m_where(std::move(where)) {}

  Exit code() const noexcept { return m_code; }
  const std::string& hint() const noexcept { return m_hint; }
  const std::string& where() const noexcept { return m_where; }

private:
  Exit m_code;
  std::string m_hint;
  std::string m_where;
};

// Short stable name of an exit code, used as the audit record's exit reason.
const char* exit_name(Exit code) noexcept;

} // namespace lethe
