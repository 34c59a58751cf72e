// Any message a platform (or an attacker on the broker) can send: the first byte picks the
// profile, then "topic\npayload". Every profile must answer or refuse, never crash or throw. A
// write it accepts goes on down the write path as far as the wire: every value encoded into its
// point's registers (which must succeed: accept_write promised it fits), and both replies built.
#include <cstdint>
#include <string>

#include "load.hpp"
#include "mapping/decode.hpp"
#include "north/north.hpp"
#include "north/profile.hpp"
#include "platforms/platform.hpp"
#include "pushed.hpp"

namespace {

const char* kConfig = R"(
clouds:
  dp: { platform: onenet, host: h, product_id: "469948", product_key: a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U= }
  tm: { platform: onenet, protocol: thing-model, host: h, product_id: P1, product_key: a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=, remote_config: true }
  legacy: { platform: onenet-legacy, host: h, product_id: "1", keepalive: 120s }
  das: { platform: aiot, host: h, product_id: pk }
  tb: { platform: thingsboard, host: h, username: T, remote_config: true, diagnostics: true }
  plain: { platform: mqtt, host: h, command_topic: "c/{device}", config_topic: cfg/gw, remote_config: true,
           diagnostics: true, diagnostics_topic: diag/gw }
  point: { platform: mqtt, host: h, command_topic: "p/{device}/{point}" }
buses:
  s: { driver: sim }
devices:
  - { name: d1, cloud: dp, bus: s, points: &w [ { name: a, area: holding, address: 0 }, { name: on, area: coil, address: 1, writable: true, commands: { "on": true, "off": 0 } }, { name: f, area: holding, address: 2, type: float32, order: cdab, writable: true, min: -5, max: 1e6 }, { name: u, area: holding, address: 4, scale: 0.1, offset: -40, writable: true }, { name: i, area: holding, address: 5, type: int64, order: dcba, writable: true }, { name: u64, area: holding, address: 9, type: uint64, writable: true }, { name: s, area: holding, address: 13, type: string, length: 3, order: badc, writable: true }, { name: b, area: holding, address: 16, type: bcd, writable: true, commands: { max: 9999 } }, { name: d, area: holding, address: 17, type: float64, scale: 1e-300, writable: true } ] }
  - { name: gw, cloud: tm, bus: s, gateway: true, points: *w }
  - { name: s1, cloud: tm, bus: s, via: gw, points: [ { name: Ua, area: holding, address: 0 }, { name: Ia, area: coil, address: 1 }, { name: sp, area: holding, address: 2, type: int16, writable: true, commands: { low: -32768 } } ] }
  - { name: l1, cloud: legacy, bus: s, device_id: "5", key: x, points: *w }
  - { name: a1, cloud: das, bus: s, key: x, points: *w }
  - { name: t1, cloud: tb, bus: s, points: *w }
  - { name: m1, cloud: plain, bus: s, points: *w }
  - { name: m2, cloud: point, bus: s, points: *w }
)";

struct World {
    fieldlink::config::Config cfg;
    std::vector<fieldlink::north::SessionInfo> sessions;
    std::vector<std::unique_ptr<fieldlink::north::Profile>> profiles;
    fieldlink::north::LatestValues latest;
    World() {
        cfg = fieldlink::load_config_text(kConfig, "fuzz.yaml", nullptr).config;
        profiles = fieldlink::platforms::make_profiles(cfg);
        sessions = fieldlink::north::plan_sessions(cfg, profiles);
        latest[2] = {fieldlink::core::Value{1.5}, fieldlink::core::Value{true}};
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static World w;
    if (size < 1 || w.sessions.empty()) return 0;
    const auto& s = w.sessions[data[0] % w.sessions.size()];
    const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto nl = rest.find('\n');
    const std::string topic = rest.substr(0, nl);
    const std::string payload = nl == std::string::npos ? "" : rest.substr(nl + 1);
    const auto& p = *w.profiles[static_cast<std::size_t>(s.cloud - w.cfg.clouds.data())];
    auto in = p.on_message(s, topic, payload, w.latest);
    for (const auto& r : in.replies) (void)r.payload.size();
    if (in.diagnostics) {  // a diagnostics request: both answers built
        (void)p.diagnostics_reply(s, *in.diagnostics, true, R"({"values":[1]})").payload.size();
        (void)p.diagnostics_reply(s, *in.diagnostics, false, in.diagnostics->problem).payload.size();
    }
    if (in.config_push) {  // a configuration pushed on the channel: what the daemon checks first, the report
        std::string why;
        (void)fieldlink::pushed::target_of("/etc/fieldlink/config.yaml", in.config_push->file, &why);
        for (const auto& e : fieldlink::pushed::literal_secrets(in.config_push->text, "pushed.yaml")) {
            (void)fieldlink::config::format_error("config.yaml", e);
        }
        fieldlink::north::ConfigReport r;
        r.id = in.config_push->id;
        r.file = in.config_push->file;
        r.version = fieldlink::pushed::version_of(in.config_push->text);
        r.result = "refused";
        r.error = in.config_push->problem;
        r.reply_topic = in.config_push->reply_topic;
        std::uint32_t next_id = 1;
        for (const auto& m : p.config_report(s, r, next_id)) (void)m.payload.size();
    }
    if (in.write) {
        const auto& d = w.cfg.devices.at(in.write->device);
        for (const auto& pv : in.write->values) {
            const auto& pt = d.points.at(pv.point_index);
            std::uint16_t regs[125] = {};
            std::string why;
            if (!fieldlink::config::is_bit_area(pt.area) &&
                !fieldlink::mapping::encode_registers(fieldlink::mapping::codec_of(pt), pv.value, regs, &why)) {
                __builtin_trap();  // accepted but not encodable: the write would fail on the bus
            }
        }
        (void)p.command_reply(s, *in.write, {true, {}, in.write->values}).payload.size();
        (void)p.command_reply(s, *in.write, {false, "timeout", {}}).payload.size();
    }
    return 0;
}
