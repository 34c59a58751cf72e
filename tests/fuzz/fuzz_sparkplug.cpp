// What a Sparkplug host (or anyone on the broker) sends an edge node: the first byte picks the
// topic (NCMD, DCMD of either device, of a device that is not there, the primary host's STATE),
// the rest is the payload. The sparkplug profile must answer or refuse; a write it accepts goes
// on down the write path as far as the wire (every value encoded into its point's registers,
// which accept_write promised), and its read-back DDATA is built. The payload is also decoded
// on its own, every metric read as each datatype, and what decodes is encoded again and must
// decode to the same metrics.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "load.hpp"
#include "mapping/decode.hpp"
#include "north/north.hpp"
#include "platforms/platform.hpp"
#include "platforms/sparkplug_payload.hpp"

namespace sp = fieldlink::platforms::sparkplug;

namespace {

const char* kConfig = R"(
clouds:
  spb: { platform: sparkplug, host: h, group_id: G, edge_node_id: N, primary_host: H }
buses:
  s: { driver: sim }
devices:
  - { name: d1, cloud: spb, bus: s, points: &w [ { name: a, area: holding, address: 0 }, { name: on, area: coil, address: 1, writable: true }, { name: f, area: holding, address: 2, type: float32, order: cdab, writable: true, min: -5, max: 1e6 }, { name: u, area: holding, address: 4, scale: 0.1, offset: -40, writable: true }, { name: i, area: holding, address: 5, type: int64, order: dcba, writable: true }, { name: u64, area: holding, address: 9, type: uint64, writable: true }, { name: s, area: holding, address: 13, type: string, length: 3, order: badc, writable: true }, { name: b, area: holding, address: 16, type: bcd, writable: true }, { name: d, area: holding, address: 17, type: float64, scale: 1e-300, writable: true }, { name: i16, area: holding, address: 21, type: int16, writable: true }, { name: u32, area: holding, address: 22, type: uint32, writable: true } ] }
  - { name: d2, cloud: spb, bus: s, points: *w }
)";

const char* const kTopics[] = {"spBv1.0/G/NCMD/N",      "spBv1.0/G/DCMD/N/d1", "spBv1.0/G/DCMD/N/d2",
                               "spBv1.0/G/DCMD/N/none", "spBv1.0/STATE/H",     "spBv1.0/G/DDATA/N/d1"};

struct World {
    fieldlink::config::Config cfg;
    std::vector<fieldlink::north::SessionInfo> sessions;
    std::vector<std::unique_ptr<fieldlink::north::Profile>> profiles;
    fieldlink::north::LatestValues latest;
    World() {
        cfg = fieldlink::load_config_text(kConfig, "fuzz.yaml", nullptr).config;
        profiles = fieldlink::platforms::make_profiles(cfg);
        sessions = fieldlink::north::plan_sessions(cfg, profiles);
        latest[0] = {fieldlink::core::Value{std::uint64_t{7}}, fieldlink::core::Value{true}};
    }
    // Each input finds the node connected and born (the primary host online), as a command does.
    void fresh() {
        const auto& p = *profiles[0];
        sessions[0].state = p.make_state();
        (void)p.will(sessions[0]);
        std::uint32_t id = 1;
        (void)p.on_connect(sessions[0], latest, id);
        (void)p.on_message(sessions[0], "spBv1.0/STATE/H", R"({"online":true,"timestamp":1})", latest);
    }
};

// A command the profile accepted, carried down the write path as far as the wire.
void write_path(const World& w, const fieldlink::north::Profile& p, const fieldlink::north::Command& c) {
    const auto& d = w.cfg.devices.at(c.device);
    for (const auto& pv : c.values) {
        const auto& pt = d.points.at(pv.point_index);
        std::uint16_t regs[125] = {};
        std::string why;
        if (!fieldlink::config::is_bit_area(pt.area) &&
            !fieldlink::mapping::encode_registers(fieldlink::mapping::codec_of(pt), pv.value, regs, &why)) {
            __builtin_trap();  // accepted but not encodable: the write would fail on the bus
        }
    }
    // The read-back DDATA: every value read back fits the metric's datatype.
    const auto reply = p.command_reply(w.sessions[0], c, {true, {}, c.values});
    if (!reply.topic.empty() && !sp::decode(reply.payload, nullptr)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static World w;
    if (size < 1 || w.sessions.empty()) return 0;
    const auto& profile = *w.profiles[0];
    w.fresh();
    const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
    auto in = profile.on_message(w.sessions[0], kTopics[data[0] % std::size(kTopics)], payload, w.latest);
    if (!in.malformed && !in.refused && in.problem.empty() && in.kind == "DCMD" && !in.write) std::abort();
    if (in.write) write_path(w, profile, *in.write);
    const std::string bytes = payload;
    std::string err;
    auto p = sp::decode(bytes, &err);
    if (!p) {
        if (err.empty()) std::abort();  // a refusal always says why
        return 0;
    }
    for (auto& m : p->metrics) {
        for (std::uint32_t t = 0; t <= 14; ++t) (void)sp::typed_value(m, static_cast<sp::DataType>(t));
        // Encode what was read with a datatype its value fits (the field it came in decides).
        if (!m.value) {
            m.datatype = sp::DataType::unknown;
            continue;
        }
        if (std::holds_alternative<std::uint64_t>(*m.value)) m.datatype = sp::DataType::uint64;
        if (std::holds_alternative<double>(*m.value)) m.datatype = sp::DataType::float64;
        if (std::holds_alternative<bool>(*m.value)) m.datatype = sp::DataType::boolean;
        if (std::holds_alternative<std::string>(*m.value)) m.datatype = sp::DataType::string;
        if (m.is_null) m.value.reset();
    }
    const auto again = sp::encode(*p, &err);
    if (!again) std::abort();  // every value fits the datatype chosen for it
    const auto back = sp::decode(*again, &err);
    if (!back || back->metrics.size() != p->metrics.size() || back->seq != p->seq) std::abort();
    for (std::size_t i = 0; i < p->metrics.size(); ++i) {
        const auto& a = p->metrics[i];
        const auto& b = back->metrics[i];
        if (a.name != b.name || a.alias != b.alias || a.historical != b.historical || a.is_null != b.is_null)
            std::abort();
        // (NaN never equals itself; a string with a NUL byte ends there in protobuf-c's C string)
        const bool comparable = !(a.value && std::holds_alternative<double>(*a.value) &&
                                  std::get<double>(*a.value) != std::get<double>(*a.value)) &&
                                !(a.value && std::holds_alternative<std::string>(*a.value) &&
                                  std::get<std::string>(*a.value).find('\0') != std::string::npos);
        if (comparable && a.value != b.value) std::abort();
    }
    return 0;
}
