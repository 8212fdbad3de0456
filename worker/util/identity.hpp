// Who is running lethe: recorded on every audit record (C12).
#pragma once

#include <string>

namespace lethe::util {

struct Identity {
  std::string actor;   // `--operator` name, else "systemd:<unit>", else the OS user name
  std::string os_user; // the OS account the process runs as
  std::string unit;    // systemd unit name when started by systemd, else empty
};

// Works out the identity from `operator_name` (may be empty), the OS and systemd's cgroup.
Identity current_identity(const std::string& operator_name);

} // namespace lethe::util
