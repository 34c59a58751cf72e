// What of a polled batch goes north: report by exception (deadband, on_change, heartbeat) for
// properties, triggers (change, rising) for events and attributes. One filter per device, on its
// bus worker's thread; the bus hands it every decoded batch.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "config/config.hpp"
#include "core/value.hpp"

namespace fieldlink::mapping {

class ReportFilter {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;

    ReportFilter() = default;
    explicit ReportFilter(const config::DeviceConfig& dc);
    // Removes from `batch` what is not reported now: a property unchanged within its deadband
    // (and its heartbeat not due), an event or attribute whose trigger did not fire. When one
    // point of an event fires, the event's other points go along (they are its parameters).
    void apply(const config::DeviceConfig& dc, core::SampleBatch& batch, TimePoint now);
    // The point's next value is news, whatever its deadband or trigger: what was filtered
    // against never reached the platform (a batch not handed over).
    void forget(std::uint32_t point);
    // ... whatever its deadband (a value written from the platform): triggers keep their state.
    void forget_sent(std::uint32_t point);

  private:
    bool report_now(const config::PointConfig& p, std::uint32_t index, const core::Value& v, TimePoint now);
    bool fires(const config::PointConfig& p, std::uint32_t index, const core::Value& v);

    // Events and attributes: the last value of each point reported only when its trigger fires
    // (empty: none).
    std::vector<std::optional<core::Value>> seen_;
    // Report by exception: the value each such property was last sent with, and when (empty: the
    // device has none).
    std::vector<std::optional<core::Value>> sent_;
    std::vector<TimePoint> sent_at_;
};

}  // namespace fieldlink::mapping
