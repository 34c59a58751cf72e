// Whether the wall clock can be trusted, and its steps. A Raspberry Pi has no battery-backed
// clock: it boots with the time of its last shutdown (or 1970) and steps to the true time when
// NTP answers, often minutes later. Samples are anchored to the boot-time clock (CLOCK_BOOTTIME,
// which never steps), so those taken before the wall clock can be trusted are stamped with their
// true time once it can: unix ms = boot ms + (wall - boot offset then).
#pragma once

#include <cstdint>
#include <string>

namespace fieldlink::core {

// gateway.clock: when samples may be stamped with the wall clock.
enum class ClockPolicy {
    automatic,  // trusted when the kernel says it is synchronised, after a step, or when it is not
                // before the floor (this build's date, the newest sample in the store)
    wait,       // only when the kernel says it is synchronised, or after a step
    off,        // always (stamps are whatever the wall clock says)
};

// Milliseconds of CLOCK_BOOTTIME (counts suspend, never steps).
std::int64_t boot_ms();
// The kernel's view (adjtimex): true when an NTP client has marked the clock synchronised.
bool kernel_clock_synced();

class ClockWatch {
  public:
    ClockWatch(ClockPolicy policy, std::int64_t floor_unix_ms);
    bool trusted() const { return trusted_; }
    // Looks at the clocks. Returns the step in ms (wall against boot time, either way, more than a
    // second since the last look), 0 when none. A step, or the kernel saying synchronised, makes
    // the clock trusted.
    std::int64_t check();
    // The Unix time of a boot-time instant, with the wall clock as it is now.
    std::int64_t unix_ms_at(std::int64_t boot) const { return boot + offset_; }
    // Why the clock is not trusted yet (for the log and the status), "" when it is.
    std::string why_not() const;

  private:
    ClockPolicy policy_;
    std::int64_t offset_ = 0;  // wall - boot, ms, at the last look
    bool trusted_ = false;
};

}  // namespace fieldlink::core
