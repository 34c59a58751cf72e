// OneNET legacy "multi-protocol" MQTT (protocols.md §3): clientId = numeric device id, username =
// product id, password = the device's auth_info (or an API key). Uplink on $dp: type 3
// ({"stream":value}, stamped on arrival) for one waiting sample set, type 1 (datastreams with
// "at" times) when a backlog waits, so every value keeps its acquisition time. Commands arrive on
// $creq/{uuid} without subscribing and are answered on $crsp/{uuid}.
#include <fmt/format.h>

#include <ctime>

#include <algorithm>

#include "platforms/json.hpp"
#include "platforms/onenet_legacy.hpp"
#include "platforms/platform.hpp"

namespace fieldlink::platforms {
namespace {

constexpr std::size_t kMaxBatchesPerMessage = 50;  // keeps type-1 payloads well under 64 KB
constexpr const char* kNoCommands = "commands from the cloud are not supported yet by this gateway";

// The legacy platform reads "at" as its local time, China Standard Time (UTC+8).
std::string platform_time(std::int64_t ms) {
    const std::time_t t = static_cast<std::time_t>(ms / 1000) + std::time_t{8} * 3600;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

class OnenetLegacy : public north::Profile {
  public:
    using north::Profile::Profile;

    std::optional<north::Credentials> credentials(const north::SessionInfo& s, std::int64_t,
                                                  std::string*) const override {
        return north::Credentials{s.identity->device_id, cloud_.product_id,
                                  s.identity->key.empty() ? cloud_.password : s.identity->key, 0};
    }

    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t&) const override {
        std::vector<north::Packet> out;
        const auto& d = *s.identity;
        while (!pending.empty() && out.size() < max_packets) {
            north::Packet p;
            north::Message m;
            m.topic = "$dp";
            if (pending.size() == 1) {
                std::string json = "{";
                for (const auto& pv : pending.front().values) {
                    if (json.size() > 1) json += ',';
                    append_json_string(json, d.points[pv.point_index].name);
                    json += ':';
                    append_json_value(json, pv.value);
                }
                m.payload = onenet_legacy_frame(3, json + "}");
                north::take_front(pending, p);
            } else {
                const std::size_t n = north::batches_within_budget(pending, kMaxBatchesPerMessage);
                std::vector<std::string> streams(d.points.size());
                for (std::size_t i = 0; i < n; ++i) {
                    const auto& b = pending[i];
                    const std::string at = platform_time(b.timestamp_ms);
                    for (const auto& pv : b.values) {
                        std::string& st = streams[pv.point_index];
                        st += st.empty() ? "" : ",";
                        st += R"({"at":")" + at + R"(","value":)";
                        append_json_value(st, pv.value);
                        st += '}';
                    }
                }
                std::string json = R"({"datastreams":[)";
                bool first = true;
                for (std::size_t k = 0; k < streams.size(); ++k) {
                    if (streams[k].empty()) continue;
                    json += first ? "" : ",";
                    first = false;
                    json += R"({"id":)";
                    append_json_string(json, d.points[k].name);
                    json += R"(,"datapoints":[)" + streams[k] + "]}";
                }
                m.payload = onenet_legacy_frame(1, json + "]}");
                for (std::size_t i = 0; i < n; ++i) north::take_front(pending, p);
            }
            m.samples = p.samples;
            p.messages.push_back(std::move(m));
            out.push_back(std::move(p));
        }
        return out;
    }

    north::Inbound on_message(const north::SessionInfo&, const std::string& topic, const std::string&,
                              const north::LatestValues&) const override {
        north::Inbound in;
        if (topic.rfind("$creq/", 0) == 0 && topic.size() > 6) {
            in.kind = "$creq";
            in.command = in.refused = true;
            in.problem = std::string("command refused: ") + kNoCommands;
            in.replies.push_back(
                {"$crsp/" + topic.substr(6), fmt::format(R"({{"code":1,"msg":"{}"}})", kNoCommands), 0});
            return in;
        }
        in.kind = "unexpected";
        in.problem = "message on a topic this platform does not use";
        return in;
    }
};

class OnenetLegacyPlatform : public Platform {
  public:
    const char* name() const override { return "onenet-legacy"; }

    void check_cloud(config::CloudConfig& c, config::Checker& check) const override {
        require(check, c, c.product_id, "product_id");
        no_variants(check, c);
        if (c.keepalive < config::Duration{120'000}) {
            check.fail(c.mark_of("keepalive"), config::cloud_path(c) + ".keepalive",
                       "OneNET legacy MQTT expects a keepalive of at least 120s");
        }
        if (c.max_rate == 0) c.max_rate = 1.0;
        if (c.port == 0) c.port = 6002;
    }

    void check_device(const config::Config& cfg, std::size_t index, config::Checker& check) const override {
        Platform::check_device(cfg, index, check);
        const auto& d = cfg.devices[index];
        const auto& cloud = cfg.clouds[d.cloud_index];
        const bool numeric = !d.device_id.empty() && std::all_of(d.device_id.begin(), d.device_id.end(),
                                                                 [](char ch) { return ch >= '0' && ch <= '9'; });
        if (!numeric) {
            check.fail(
                d.mark, config::device_path(index) + ".device_id",
                "OneNET legacy needs 'device_id': the numeric device id the platform assigned (the MQTT client id)");
        }
        if (d.key.empty() && cloud.password.empty()) {
            check.fail(d.mark, config::device_path(index),
                       "device '" + d.name + "' needs 'key' (its auth_info), or cloud '" + cloud.name +
                           "' needs 'password' (an API key)");
        }
    }

    std::unique_ptr<north::Profile> make_profile(const config::CloudConfig& c) const override {
        return std::make_unique<OnenetLegacy>(c);
    }
};

}  // namespace

std::string onenet_legacy_frame(std::uint8_t type, const std::string& body) {
    std::string out;
    out += static_cast<char>(type);
    out += static_cast<char>((body.size() >> 8) & 0xFF);
    out += static_cast<char>(body.size() & 0xFF);
    return out + body;
}

const Platform& onenet_legacy_platform() {
    static const OnenetLegacyPlatform p;
    return p;
}

}  // namespace fieldlink::platforms
