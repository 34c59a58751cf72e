// libsystemd, loaded only when systemd started the daemon (NOTIFY_SOCKET, JOURNAL_STREAM or
// WATCHDOG_USEC in the environment): its notify protocol and the journal through the library
// itself, and none of its seven shared libraries in the process anywhere else (a container, a
// shell), where they would cost about 0.8 MB of resident memory for nothing.
#pragma once

#include <cstdint>
#include <string>

namespace fieldlink::core::systemd {

// True when started by systemd and libsystemd could be loaded.
bool available();
// sd_notify(0, state); nothing (0) outside systemd.
int notify(const char* state);
// sd_watchdog_enabled(): true with the interval when the unit has WatchdogSec=.
bool watchdog(std::uint64_t* usec);
// True when stderr goes to the journal (JOURNAL_STREAM) and the journal API is usable.
bool journal();
// sd_journal_send() of one message with its syslog priority and component.
void journal_send(int priority, const std::string& message, const std::string& component);

}  // namespace fieldlink::core::systemd
