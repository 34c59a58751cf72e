#include "core/clock.hpp"

#include <sys/timex.h>

#include <chrono>
#include <cstdlib>
#include <ctime>

namespace fieldlink::core {

namespace {

std::int64_t clock_ms(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::int64_t wall_ms() {
    return clock_ms(CLOCK_REALTIME);
}

constexpr std::int64_t kStepMs = 1000;

}  // namespace

std::int64_t boot_ms() {
    return clock_ms(CLOCK_BOOTTIME);
}

bool kernel_clock_synced() {
    timex tx{};
    const int state = adjtimex(&tx);
    return state != -1 && state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
}

ClockWatch::ClockWatch(ClockPolicy policy, std::int64_t floor_unix_ms)
    : policy_(policy),
      offset_(wall_ms() - boot_ms()),
      trusted_(policy == ClockPolicy::off || kernel_clock_synced() ||
               (policy == ClockPolicy::automatic && wall_ms() >= floor_unix_ms)) {}

std::int64_t ClockWatch::check() {
    const std::int64_t offset = wall_ms() - boot_ms();
    const std::int64_t step = offset - offset_;
    offset_ = offset;
    const bool stepped = std::llabs(step) > kStepMs;
    if (!trusted_ && (stepped || kernel_clock_synced())) trusted_ = true;
    return stepped ? step : 0;
}

std::string ClockWatch::why_not() const {
    if (trusted_) return {};
    if (policy_ == ClockPolicy::wait)
        return "the kernel does not say the clock is synchronised yet (gateway.clock: wait)";
    return "the wall clock is before this build's date or the newest stored sample, and the kernel does not say it is "
           "synchronised";
}

}  // namespace fieldlink::core
