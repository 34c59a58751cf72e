// Samples taken before the wall clock can be trusted (a Pi without a battery-backed clock, before
// NTP answers): held in memory, in order, and stamped with their true time once it can be
// (core/clock.hpp says when). Past kMaxHeld batches the oldest go, counted: a clock that is never
// set must not take the memory of the Pi.
#pragma once

#include <cstdint>
#include <deque>

#include "core/clock.hpp"
#include "core/value.hpp"

namespace fieldlink::north {

class ClockHold {
  public:
    static constexpr std::size_t kMaxHeld = 200'000;

    ClockHold(core::ClockPolicy policy, std::int64_t floor_unix_ms) : clock_(policy, floor_unix_ms) {}
    bool trusted() const { return clock_.trusted(); }
    const core::ClockWatch& clock() const { return clock_; }

    // Keeps the batches (the clock is not trusted).
    void hold(std::deque<core::SampleBatch>& batches);
    // Looks at the clock: the step it made (ms, 0: none), as ClockWatch::check().
    std::int64_t check() { return clock_.check(); }
    // Once the clock is trusted: what was held, stamped with its true time, oldest first (and the
    // hold is empty).
    std::deque<core::SampleBatch> release();

    std::size_t held() const { return held_.size(); }
    std::uint64_t samples_dropped() const { return dropped_; }

  private:
    core::ClockWatch clock_;
    std::deque<core::SampleBatch> held_;
    std::uint64_t dropped_ = 0;
};

}  // namespace fieldlink::north
