#include "worker/util/identity.hpp"

#include <cstdlib>
#include <fstream>
#include <pwd.h>
#include <unistd.h>

namespace lethe::util {
namespace {

std::string os_user_name() {
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    return pw->pw_name;
  }
  return "uid:" + std::to_string(::geteuid());
}

// The unit of a service started by systemd: the last ".service" path element of our cgroup.
std::string systemd_unit() {
  if (std::getenv("INVOCATION_ID") == nullptr) {
    return {};
  }
  std::ifstream cg("/proc/self/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    auto pos = line.rfind('/');
    if (pos == std::string::npos) {
      continue;
    }
    std::string last = line.substr(pos + 1);
    if (last.size() > 8 && last.ends_with(".service")) {
      return last;
    }
  }
  return "unknown.service";
}

} // namespace

Identity current_identity(const std::string& operator_name) {
  Identity id;
  id.os_user = os_user_name();
  id.unit = systemd_unit();
  if (!operator_name.empty()) {
    id.actor = operator_name;
  } else if (!id.unit.empty()) {
    id.actor = "systemd:" + id.unit;
  } else {
    id.actor = id.os_user;
  }
  return id;
}

} // namespace lethe::util
