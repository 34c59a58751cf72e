#include "serve/image.hpp"

#include <algorithm>

#include "mapping/decode.hpp"

namespace fieldlink::serve {

Cache::Cache(const config::Config& cfg) {
    values_.resize(cfg.devices.size());
    for (std::size_t d = 0; d < cfg.devices.size(); ++d) values_[d].resize(cfg.devices[d].points.size());
}

Cache::Cache(const config::Config& cfg, const Cache& previous, const config::Config& previous_cfg) : Cache(cfg) {
    const std::lock_guard<std::mutex> lock(previous.mu_);
    for (std::size_t d = 0; d < cfg.devices.size(); ++d) {
        const auto& nd = cfg.devices[d];
        const auto od = std::find_if(previous_cfg.devices.begin(), previous_cfg.devices.end(),
                                     [&nd](const config::DeviceConfig& x) { return x.name == nd.name; });
        if (od == previous_cfg.devices.end()) continue;
        const auto oi = static_cast<std::size_t>(od - previous_cfg.devices.begin());
        for (std::size_t p = 0; p < nd.points.size(); ++p) {
            for (std::size_t q = 0; q < od->points.size(); ++q) {
                if (od->points[q].name == nd.points[p].name && oi < previous.values_.size() &&
                    q < previous.values_[oi].size()) {
                    values_[d][p] = previous.values_[oi][q];
                }
            }
        }
    }
}

void Cache::put(const core::SampleBatch& b) {
    const std::lock_guard<std::mutex> lock(mu_);
    if (b.device_index >= values_.size()) return;
    auto& device = values_[b.device_index];
    for (const auto& pv : b.values) {
        if (pv.point_index >= device.size()) continue;
        device[pv.point_index] = Entry{pv.value, b.timestamp_ms, false};
    }
    for (auto& e : device) e.down = false;  // it answered
}

void Cache::down(std::uint32_t device) {
    const std::lock_guard<std::mutex> lock(mu_);
    if (device >= values_.size()) return;
    for (auto& e : values_[device]) e.down = true;
}

Cache::Entry Cache::get(std::uint32_t device, std::uint32_t point) const {
    const std::lock_guard<std::mutex> lock(mu_);
    if (device >= values_.size() || point >= values_[device].size()) return {};
    return values_[device][point];
}

Image::Image(const config::Config& cfg) : cfg_(cfg) {
    const auto& map = cfg.gateway.modbus_server.map;
    for (std::size_t i = 0; i < map.size(); ++i) {
        const auto& sp = map[i];
        const auto& p = cfg.devices[sp.device_index].points[sp.point_index];
        const int n = config::is_bit_area(sp.area) ? 1 : config::register_count(p.type, p.length);
        for (int k = 0; k < n; ++k) slots_[{sp.unit, sp.area, sp.address + k}] = Slot{i, k};
    }
}

namespace {

constexpr int kIllegalAddress = 2;

// Whether a point's value may be served: read, its unit still answering, and (with stale_after)
// not older than that. Report by exception sends only what changed, so an age limit needs a
// heartbeat shorter than it; without one, a value stays current while its unit answers.
bool current(const Cache::Entry& e, const config::ModbusServerConfig& m, std::int64_t now_ms) {
    if (!e.value || e.down) return false;
    return m.stale_after.count() == 0 || now_ms - e.at_ms <= m.stale_after.count();
}

}  // namespace

ReadResult Image::read(const Cache& cache, int unit, config::Area area, int address, int count,
                       std::int64_t now_ms) const {
    ReadResult r;
    const auto& m = cfg_.gateway.modbus_server;
    std::size_t last_entry = SIZE_MAX;
    std::uint16_t regs[125] = {};  // the current point's registers
    for (int a = address; a < address + count; ++a) {
        const auto it = slots_.find({unit, area, a});
        if (it == slots_.end()) return ReadResult{kIllegalAddress, {}, {}};
        const auto& sp = m.map[it->second.entry];
        const auto& p = cfg_.devices[sp.device_index].points[sp.point_index];
        if (it->second.entry != last_entry) {
            const auto e = cache.get(sp.device_index, sp.point_index);
            if (!current(e, m, now_ms)) return ReadResult{m.stale_exception, {}, {}};
            last_entry = it->second.entry;
            if (config::is_bit_area(area)) {
                r.bits.push_back(core::number_of(*e.value) != 0 ? 1 : 0);
                continue;
            }
            std::fill(std::begin(regs), std::end(regs), 0);
            std::string why;
            if (!mapping::encode_registers(mapping::codec_of(p), *e.value, regs, &why)) {
                return ReadResult{m.stale_exception, {}, {}};  // a value the point's type cannot hold
            }
        } else if (config::is_bit_area(area)) {
            continue;
        }
        r.words.push_back(regs[it->second.offset]);
    }
    return r;
}

}  // namespace fieldlink::serve
