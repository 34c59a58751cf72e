// Any message a platform (or an attacker on the broker) can send: the first byte picks the
// profile, then "topic\npayload". Every profile must answer or refuse, never crash or throw.
#include <cstdint>
#include <string>

#include "load.hpp"
#include "north/north.hpp"
#include "north/profile.hpp"
#include "platforms/platform.hpp"

namespace {

const char* kConfig = R"(
clouds:
  dp: { platform: onenet, host: h, product_id: "469948", product_key: a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U= }
  tm: { platform: onenet, protocol: thing-model, host: h, product_id: P1, product_key: a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U= }
  legacy: { platform: onenet-legacy, host: h, product_id: "1", keepalive: 120s }
  das: { platform: aiot, host: h, product_id: pk }
  tb: { platform: thingsboard, host: h, username: T }
  plain: { platform: mqtt, host: h }
buses:
  s: { driver: sim }
devices:
  - { name: d1, cloud: dp, bus: s, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: gw, cloud: tm, bus: s, gateway: true, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: s1, cloud: tm, bus: s, via: gw, points: [ { name: Ua, area: holding, address: 0 }, { name: Ia, area: coil, address: 1 } ] }
  - { name: l1, cloud: legacy, bus: s, device_id: "5", key: x, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: a1, cloud: das, bus: s, key: x, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: t1, cloud: tb, bus: s, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: m1, cloud: plain, bus: s, points: [ { name: a, area: holding, address: 0 } ] }
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
    return 0;
}
