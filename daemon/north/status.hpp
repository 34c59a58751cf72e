// status.json (for `fieldlink status` and /api/status) and metrics.prom (Prometheus text format,
// served by /metrics, or for node_exporter's textfile collector), rewritten atomically every
// status period from the sessions, the store and the latest value of every point. The figures
// come from their tables (north/counters.hpp, store/stats.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/value.hpp"
#include "north/loop.hpp"
#include "north/session.hpp"
#include "store/outbox.hpp"

namespace fieldlink::north {

class AtomicFile;

// What one status write reads.
struct StatusView {
    const config::Config& cfg;
    const std::vector<std::unique_ptr<Session>>& sessions;
    store::Outbox* store;  // null: none
    bool clock_trusted;
    std::size_t held;  // batches held for the clock
    std::size_t connected;
    std::int64_t now_ms;
    std::chrono::milliseconds period;
};

class StatusWriter {
  public:
    // At start: every device without a value yet.
    void reset(const config::Config& cfg);
    // After a reload: unchanged devices keep their latest values, a changed device starts without.
    void realign(const config::Config& old_cfg, const config::Config& next);
    // A batch on its way north: its values are the device's latest (or its unit's state).
    void remember(const core::SampleBatch& b);
    void started(TimePoint now) { last_ = now; }
    // Writes both files; "" when written, else why not (a full or read-only disk: the files keep
    // their last content).
    std::string write(const StatusView& v, TimePoint now);

  private:
    // The latest value of every point of a device, and when it came.
    struct Latest {
        std::int64_t time_ms = 0;  // the device's last batch
        bool up = true;            // its unit answers
        std::vector<std::optional<core::Value>> values;
        std::vector<std::int64_t> at;
    };
    // A device without any value yet.
    static Latest none_yet(const config::DeviceConfig& dc);
    void print_devices(AtomicFile& status, const config::Config& cfg, std::int64_t now_ms) const;

    std::vector<Latest> latest_;
    std::vector<std::uint64_t> last_samples_sent_;  // per session, for the send rate
    TimePoint last_{};
};

}  // namespace fieldlink::north
