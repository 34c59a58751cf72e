#include "watchdog.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/log.hpp"

namespace fieldlink::north {

std::chrono::milliseconds Watchdog::tick_period() const {
    const auto ping =
        period_.count() > 0 ? std::max(std::chrono::milliseconds(50), period_ / 2) : std::chrono::milliseconds(1000);
    return std::min(ping, std::chrono::milliseconds(1000));
}

std::string Watchdog::notification(std::string status) {
    const std::string stuck = stuck_ ? stuck_() : std::string();
    if (stuck.empty()) {
        if (!stuck_logged_.empty()) core::logger("north")->info("watchdog: every bus worker makes progress again");
        stuck_logged_.clear();
        if (period_.count() > 0) status += "\nWATCHDOG=1";
        return status;
    }
    if (stuck_logged_.empty()) {  // once per stretch (the message counts the seconds)
        core::logger("north")->error("watchdog: {}; no more keep-alive pings to the service manager", stuck);
    }
    stuck_logged_ = stuck;
    return status + "; " + stuck;
}

}  // namespace fieldlink::north
