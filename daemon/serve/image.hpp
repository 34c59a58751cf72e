// What the local Modbus TCP server (gateway.modbus_server) answers: the latest value of each
// served point (Cache, filled by the north side as samples arrive, read by the server's thread)
// laid out at the addresses the configuration maps (Image). A read covering an unmapped address
// is an illegal data address (exception 2); one covering a point with no value yet, a stale one
// (older than stale_after) or one whose unit stopped answering gets the configured exception
// (4 or 11) rather than an old value.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

#include "config/config.hpp"
#include "core/value.hpp"

namespace fieldlink::serve {

// The latest value of every point of every device, with its acquisition time; thread-safe.
class Cache {
  public:
    explicit Cache(const config::Config& cfg);
    // A reload's cache: the values of devices and points that keep their names carry over (report
    // by exception would not send an unchanged value again).
    Cache(const config::Config& cfg, const Cache& previous, const config::Config& previous_cfg);
    void put(const core::SampleBatch& b);
    void down(std::uint32_t device);  // its unit stopped answering: its values are not current
    struct Entry {
        std::optional<core::Value> value;
        std::int64_t at_ms = 0;
        bool down = false;
    };
    Entry get(std::uint32_t device, std::uint32_t point) const;

  private:
    mutable std::mutex mu_;
    std::vector<std::vector<Entry>> values_;
};

struct ReadResult {
    int exception = 0;                 // 0: served
    std::vector<std::uint16_t> words;  // register areas
    std::vector<std::uint8_t> bits;    // coil and discrete areas, one per byte
};

class Image {
  public:
    // `cfg` outlives the image.
    explicit Image(const config::Config& cfg);
    // A read of `count` registers or bits of `area` at `address` for `unit`, at `now_ms`.
    ReadResult read(const Cache& cache, int unit, config::Area area, int address, int count, std::int64_t now_ms) const;
    // The served point at an address: its map entry, and which of its registers it is.
    struct Where {
        std::size_t entry;
        int offset;
    };
    std::optional<Where> at(int unit, config::Area area, int address) const {
        const auto it = slots_.find({unit, area, address});
        if (it == slots_.end()) return std::nullopt;
        return Where{it->second.entry, it->second.offset};
    }

  private:
    struct Slot {
        std::size_t entry;  // index into the map
        int offset;         // register of the point's value this address holds
    };
    const config::Config& cfg_;
    std::map<std::tuple<int, config::Area, int>, Slot> slots_;  // (unit, area, address)
};

}  // namespace fieldlink::serve
