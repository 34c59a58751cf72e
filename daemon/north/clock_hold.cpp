#include "clock_hold.hpp"

#include "core/log.hpp"

namespace fieldlink::north {

void ClockHold::hold(std::deque<core::SampleBatch>& batches) {
    for (auto& b : batches) held_.push_back(std::move(b));
    if (held_.size() <= kMaxHeld) return;
    const std::size_t over = held_.size() - kMaxHeld;
    if (dropped_ == 0) {
        core::logger("north")->error("{} batches held for the clock: the oldest are dropped from now on, counted",
                                     kMaxHeld);
    }
    for (std::size_t i = 0; i < over; ++i) dropped_ += held_[i].values.size();
    held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(over));
}

std::deque<core::SampleBatch> ClockHold::release() {
    for (auto& b : held_) {
        if (b.boot_ms != 0) b.timestamp_ms = clock_.unix_ms_at(b.boot_ms);
    }
    std::deque<core::SampleBatch> out;
    out.swap(held_);
    return out;
}

}  // namespace fieldlink::north
