// ThingsBoard gateway MQTT API (protocols.md §5): one session with the gateway device's access
// token carries every device of the cloud; devices are announced with v1/gateway/connect,
// telemetry for many devices and samples goes in one v1/gateway/telemetry message, RPCs are
// answered on v1/gateway/rpc.
#include <fmt/format.h>

#include "north/inbound.hpp"
#include "north/profile.hpp"

namespace fieldlink::north {
namespace {

constexpr std::size_t kMaxBatchesPerMessage = 200;
constexpr const char* kNoRpc = "RPC from the cloud is not supported yet by this gateway";

class ThingsBoard : public Profile {
public:
    explicit ThingsBoard(const core::CloudConfig& c) : cloud_(c) {}

    std::optional<Credentials> credentials(const SessionInfo&, std::int64_t, std::string*) const override {
        return Credentials{cloud_.client_id, cloud_.username, cloud_.password};
    }

    std::vector<std::string> subscriptions(const SessionInfo&) const override {
        return {"v1/gateway/attributes", "v1/gateway/attributes/response", "v1/gateway/rpc"};
    }

    std::vector<Message> on_connect(const SessionInfo& s, std::uint32_t&) const override {
        std::vector<Message> out;
        for (auto index : s.devices) {
            std::string p = R"({"device":)";
            append_json_string(p, s.device(index).name);
            out.push_back({"v1/gateway/connect", p + "}", 0});
        }
        return out;
    }

    std::vector<Message> build(const SessionInfo& s, std::deque<core::SampleBatch>& pending,
                               std::size_t max_messages, std::uint32_t&) const override {
        std::vector<Message> out;
        while (!pending.empty() && out.size() < max_messages) {
            const std::size_t n = batches_within_budget(pending, kMaxBatchesPerMessage);
            std::vector<std::pair<std::uint32_t, std::string>> per_device;  // device -> "[{ts,values},..."
            Message m;
            m.topic = "v1/gateway/telemetry";
            for (std::size_t i = 0; i < n; ++i) {
                const auto& b = pending[i];
                const auto& d = s.device(b.device_index);
                auto it = std::find_if(per_device.begin(), per_device.end(), [&](const auto& x) { return x.first == b.device_index; });
                if (it == per_device.end()) {
                    per_device.push_back({b.device_index, "["});
                    it = per_device.end() - 1;
                } else {
                    it->second += ',';
                }
                it->second += fmt::format(R"({{"ts":{},"values":{{)", b.timestamp_ms);
                for (std::size_t k = 0; k < b.values.size(); ++k) {
                    if (k) it->second += ',';
                    append_json_string(it->second, d.points[b.values[k].point_index].name);
                    it->second += ':';
                    append_json_value(it->second, b.values[k].value);
                }
                it->second += "}}";
                m.samples += b.values.size();
            }
            m.payload = "{";
            for (std::size_t k = 0; k < per_device.size(); ++k) {
                if (k) m.payload += ',';
                append_json_string(m.payload, s.device(per_device[k].first).name);
                m.payload += ':' + per_device[k].second + ']';
            }
            m.payload += '}';
            pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
            out.push_back(std::move(m));
        }
        return out;
    }

    Inbound on_message(const SessionInfo& s, const std::string& topic, const std::string& payload,
                       const LatestValues&) const override {
        Inbound in;
        in.kind = topic;
        auto j = parse_object(payload);
        if (!j) {
            in.malformed = true;
            in.problem = "malformed message (expected a JSON object): " + payload.substr(0, 120);
            return in;
        }
        if (topic == "v1/gateway/attributes" || topic == "v1/gateway/attributes/response") {
            in.refused = true;
            in.problem = "shared attribute updates are not applied yet (device " + text_of(*j, "device") + ")";
            return in;
        }
        if (topic != "v1/gateway/rpc") {
            in.kind = "unexpected";
            in.problem = "message on a topic this platform does not use";
            return in;
        }
        const std::string device = text_of(*j, "device");
        const Json* data = j->contains("data") && (*j)["data"].is_object() ? &(*j)["data"] : nullptr;
        auto id = data ? id_of(*data) : std::nullopt;
        const bool known = std::any_of(s.devices.begin(), s.devices.end(), [&](auto i) { return s.device(i).name == device; });
        if (!id || device.empty()) {
            in.malformed = true;
            in.problem = "malformed RPC (expected {\"device\":..,\"data\":{\"id\":..,\"method\":..}}): " + payload.substr(0, 120);
            return in;
        }
        in.command = in.refused = true;
        in.problem = known ? std::string("RPC refused: ") + kNoRpc : "RPC for unknown device " + device;
        Json r = {{"device", device}, {"data", {{"success", false}, {"error", known ? kNoRpc : "unknown device"}}}};
        r["id"] = (*data)["id"];
        in.replies.push_back({"v1/gateway/rpc", dump(r), 0});
        return in;
    }

private:
    const core::CloudConfig& cloud_;
};

}  // namespace

std::unique_ptr<Profile> make_thingsboard(const core::CloudConfig& c) { return std::make_unique<ThingsBoard>(c); }

}  // namespace fieldlink::north
