// SIGTERM/SIGINT as a request to stop after the current unit of work (systemd's stop).
#pragma once

namespace lethe::util {

// Installs handlers that only record the request.
void install_stop_handlers();

// True once SIGTERM or SIGINT arrived.
bool stop_requested() noexcept;

} // namespace lethe::util
