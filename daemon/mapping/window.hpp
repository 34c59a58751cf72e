// A device's publish window (`publish:`): its properties are polled at the device's rate but sent
// once per window, each point as its `aggregate` of the window's samples (last, min, max, mean,
// count), so a 100 ms poll fits a platform's 1 message/s. Events, attributes and the link state
// are not held: they go with the poll that read them. One window per device, on its bus worker.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "config/config.hpp"
#include "core/value.hpp"

namespace fieldlink::mapping {

class PublishWindow {
  public:
    PublishWindow() = default;
    explicit PublishWindow(const config::DeviceConfig& dc);
    // Moves the properties of `batch` into the window; what is left in `batch` goes now.
    void add(const config::DeviceConfig& dc, core::SampleBatch& batch);
    bool empty() const { return samples_ == 0; }
    // Appends one value per point sampled since the window began (its aggregate) to `out`, in
    // point order, stamps `out` with the last sample's time, and begins a new window.
    void take(const config::DeviceConfig& dc, core::SampleBatch& out);

  private:
    struct Acc {
        std::uint64_t n = 0;
        core::Value last;
        core::Value min, max;  // by number_of, in the point's own type
        double sum = 0;
    };
    std::vector<Acc> acc_;
    std::uint64_t samples_ = 0;
    std::int64_t last_ms_ = 0;
    std::int64_t last_boot_ms_ = 0;
};

}  // namespace fieldlink::mapping
