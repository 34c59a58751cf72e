// OneNET legacy "multi-protocol" MQTT (protocols.md §3): clientId = numeric device id, username =
// product id, password = the device's auth_info (or an API key). Uplink on $dp: type 3
// ({"stream":value}, stamped on arrival) for one waiting sample set, type 1 (datastreams with
// "at" times) when a backlog waits, so every value keeps its acquisition time. Commands arrive on
// $creq/{uuid} without subscribing and are answered on $crsp/{uuid}.
#include <fmt/format.h>

#include <ctime>

#include "north/inbound.hpp"
#include "north/profile.hpp"

namespace fieldlink::north {
namespace {

constexpr std::size_t kMaxBatchesPerMessage = 50;  // keeps type-1 payloads well under 64 KB
constexpr const char* kNoCommands = "commands from the cloud are not supported yet by this gateway";

std::string with_header(std::uint8_t type, const std::string& json) {
    std::string out;
    out += static_cast<char>(type);
    out += static_cast<char>((json.size() >> 8) & 0xFF);
    out += static_cast<char>(json.size() & 0xFF);
    return out + json;
}

// The legacy platform reads "at" as its local time, China Standard Time (UTC+8).
std::string platform_time(std::int64_t ms) {
    const std::time_t t = static_cast<std::time_t>(ms / 1000) + 8 * 3600;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

class OnenetLegacy : public Profile {
public:
    explicit OnenetLegacy(const core::CloudConfig& c) : cloud_(c) {}

    std::optional<Credentials> credentials(const SessionInfo& s, std::int64_t, std::string*) const override {
        return Credentials{s.identity->device_id, cloud_.product_id,
                           s.identity->key.empty() ? cloud_.password : s.identity->key};
    }

    std::vector<Message> build(const SessionInfo& s, std::deque<core::SampleBatch>& pending,
                               std::size_t max_messages, std::uint32_t&) const override {
        std::vector<Message> out;
        const auto& d = *s.identity;
        while (!pending.empty() && out.size() < max_messages) {
            Message m;
            m.topic = "$dp";
            if (pending.size() == 1) {
                std::string json = "{";
                for (const auto& pv : pending.front().values) {
                    if (json.size() > 1) json += ',';
                    append_json_string(json, d.points[pv.point_index].name);
                    json += ':';
                    append_json_value(json, pv.value);
                }
                m.payload = with_header(3, json + "}");
                m.samples = pending.front().values.size();
                pending.pop_front();
            } else {
                const std::size_t n = batches_within_budget(pending, kMaxBatchesPerMessage);
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
                    m.samples += b.values.size();
                }
                std::string json = R"({"datastreams":[)";
                bool first = true;
                for (std::size_t p = 0; p < streams.size(); ++p) {
                    if (streams[p].empty()) continue;
                    json += first ? "" : ",";
                    first = false;
                    json += R"({"id":)";
                    append_json_string(json, d.points[p].name);
                    json += R"(,"datapoints":[)" + streams[p] + "]}";
                }
                m.payload = with_header(1, json + "]}");
                pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
            }
            out.push_back(std::move(m));
        }
        return out;
    }

    Inbound on_message(const SessionInfo&, const std::string& topic, const std::string&,
                       const LatestValues&) const override {
        Inbound in;
        if (topic.rfind("$creq/", 0) == 0 && topic.size() > 6) {
            in.kind = "$creq";
            in.command = in.refused = true;
            in.problem = std::string("command refused: ") + kNoCommands;
            in.replies.push_back({"$crsp/" + topic.substr(6), fmt::format(R"({{"code":1,"msg":"{}"}})", kNoCommands), 0});
            return in;
        }
        in.kind = "unexpected";
        in.problem = "message on a topic this platform does not use";
        return in;
    }

private:
    const core::CloudConfig& cloud_;
};

}  // namespace

std::unique_ptr<Profile> make_onenet_legacy(const core::CloudConfig& c) { return std::make_unique<OnenetLegacy>(c); }

}  // namespace fieldlink::north
