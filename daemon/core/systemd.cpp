#include "systemd.hpp"

#include <dlfcn.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include <cstdlib>
#include <mutex>

namespace fieldlink::core::systemd {
namespace {

struct Library {
    void* handle = nullptr;
    decltype(&::sd_notify) notify = nullptr;
    decltype(&::sd_watchdog_enabled) watchdog = nullptr;
    decltype(&::sd_journal_send) journal_send = nullptr;
};

const Library& library() {
    static const Library lib = [] {
        Library l;
        const bool under_systemd =
            std::getenv("NOTIFY_SOCKET") || std::getenv("JOURNAL_STREAM") || std::getenv("WATCHDOG_USEC");
        if (!under_systemd) return l;
        l.handle = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!l.handle) return l;
        l.notify = reinterpret_cast<decltype(&::sd_notify)>(dlsym(l.handle, "sd_notify"));
        l.watchdog = reinterpret_cast<decltype(&::sd_watchdog_enabled)>(dlsym(l.handle, "sd_watchdog_enabled"));
        l.journal_send = reinterpret_cast<decltype(&::sd_journal_send)>(dlsym(l.handle, "sd_journal_send"));
        return l;
    }();
    return lib;
}

}  // namespace

bool available() {
    return library().notify != nullptr;
}

int notify(const char* state) {
    return library().notify ? library().notify(0, state) : 0;
}

bool watchdog(std::uint64_t* usec) {
    return library().watchdog && library().watchdog(0, reinterpret_cast<uint64_t*>(usec)) > 0;
}

bool journal() {
    return std::getenv("JOURNAL_STREAM") && library().journal_send;
}

void journal_send(int priority, const std::string& message, const std::string& component) {
    if (!library().journal_send) return;
    library().journal_send("MESSAGE=%s", message.c_str(), "PRIORITY=%d", priority, "SYSLOG_IDENTIFIER=fieldlinkd",
                           "FIELDLINK_COMPONENT=%s", component.c_str(), nullptr);
}

}  // namespace fieldlink::core::systemd
