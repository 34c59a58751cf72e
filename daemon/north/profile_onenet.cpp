// OneNET (current platform, protocols.md §1-2): token login shared by both protocols;
// "datapoints" (MQTT IoT kit, $sys/{pid}/{dev}/dp/post/json) and "thing-model" (OneNET Studio
// OneJSON), including gateway mode: topology (topo/add with each sub-device's sasToken),
// sub-device login, and batched upload through pack/post (history/post for backlogs).
#include <fmt/format.h>

#include <ctime>

#include "core/credentials.hpp"
#include "north/inbound.hpp"
#include "north/profile.hpp"

namespace fieldlink::north {
namespace {

constexpr std::size_t kMaxBatchesPerMessage = 100;  // also OneNET's 100 values per point in history/post
constexpr std::size_t kMaxPackDevices = 10;         // pack/post: at most 10 devices per message
constexpr int kCodeOk = 200;
constexpr int kCodeFailed = 100;  // the official SDK's "failed"; any non-200 code is a failure
constexpr const char* kNoWrites = "writes and services from the cloud are not supported yet by this gateway";

std::string next_id_text(std::uint32_t& next_id) { return std::to_string(take_message_id(next_id)); }

std::optional<std::string> token_for(const core::CloudConfig& cloud, const std::string& product_id,
                                     const core::DeviceConfig& d, std::int64_t now_s, std::string* error) {
    core::TokenRequest t;
    t.res = core::onenet_device_res(product_id, d.name);
    t.expiry = cloud.token_expiry ? cloud.token_expiry : now_s + cloud.token_ttl.count() / 1000;
    t.method = cloud.token_method;
    t.key_base64 = d.key.empty() ? cloud.product_key : d.key;
    return core::onenet_token(t, error);
}

// Topics the device itself publishes under thing/: requests and answers to platform requests.
bool is_own_uplink(const std::string& suffix) {
    static const char* const own[] = {"property/post", "pack/post", "history/post", "event/post", "sub/login",
                                      "sub/logout", "sub/topo/add", "sub/topo/delete", "sub/topo/get",
                                      "sub/topo/get/result", "property/desired/get", "property/desired/delete"};
    for (const char* o : own) {
        if (suffix == o) return true;
    }
    return ends_with(suffix, "_reply");
}

std::string reply(const std::string& id, int code, const std::string& msg, const std::string& data_json = "") {
    std::string out = R"({"id":)";
    append_json_string(out, id);
    out += fmt::format(R"(,"code":{},"msg":)", code);
    append_json_string(out, msg);
    if (!data_json.empty()) out += R"(,"data":)" + data_json;
    out += '}';
    return out;
}

class OnenetBase : public Profile {
public:
    explicit OnenetBase(const core::CloudConfig& c) : cloud_(c) {}

    std::optional<Credentials> credentials(const SessionInfo& s, std::int64_t now_s,
                                           std::string* error) const override {
        auto token = token_for(cloud_, cloud_.product_id, *s.identity, now_s, error);
        if (!token) return std::nullopt;
        return Credentials{s.identity->name, cloud_.product_id, *token};
    }

protected:
    std::string prefix(const SessionInfo& s) const { return "$sys/" + cloud_.product_id + "/" + s.identity->name + "/"; }
    const core::CloudConfig& cloud_;
};

// ---- datapoints ------------------------------------------------------------------------------
class OnenetDatapoints : public OnenetBase {
public:
    using OnenetBase::OnenetBase;

    std::vector<std::string> subscriptions(const SessionInfo& s) const override {
        return {prefix(s) + "dp/post/json/+", prefix(s) + "cmd/request/+"};
    }

    std::vector<Message> build(const SessionInfo& s, std::deque<core::SampleBatch>& pending,
                               std::size_t max_messages, std::uint32_t& next_id) const override {
        std::vector<Message> out;
        while (!pending.empty() && out.size() < max_messages) {
            const std::size_t n = batches_within_budget(pending, kMaxBatchesPerMessage);
            Message m;
            m.topic = prefix(s) + "dp/post/json";
            m.payload = onenet_dp_payload(*s.identity, pending, n, take_message_id(next_id));
            for (std::size_t i = 0; i < n; ++i) {
                m.samples += pending.front().values.size();
                pending.pop_front();
            }
            out.push_back(std::move(m));
        }
        return out;
    }

    Inbound on_message(const SessionInfo& s, const std::string& topic, const std::string& payload,
                       const LatestValues&) const override {
        Inbound in;
        const std::string p = prefix(s);
        if (topic == p + "dp/post/json/accepted") {
            in.kind = "dp/post/json/accepted";
        } else if (topic == p + "dp/post/json/rejected") {
            in.kind = "dp/post/json/rejected";
            in.error_reply = true;
            auto j = parse_object(payload);
            in.problem = j ? fmt::format("datapoints rejected: err_code {} {}", int_of(*j, "err_code").value_or(-1),
                                         text_of(*j, "err_msg"))
                           : "datapoints rejected (unreadable reply)";
        } else if (topic.rfind(p + "cmd/request/", 0) == 0 && topic.size() > (p + "cmd/request/").size()) {
            // Command payloads are application-defined; answer on the response topic with the same id.
            in.kind = "cmd/request";
            in.command = in.refused = true;
            in.problem = "command refused: " + std::string(kNoWrites);
            const std::string cmdid = topic.substr((p + "cmd/request/").size());
            in.replies.push_back({p + "cmd/response/" + cmdid, reply(cmdid, kCodeFailed, kNoWrites), 0});
        } else {
            in.kind = "unexpected";
            in.problem = "message on a topic this platform does not use";
        }
        return in;
    }
};

// ---- thing model (direct device or gateway) -------------------------------------------------
void append_property(std::string& out, const core::Value& v, std::int64_t time_ms) {
    out += R"({"value":)";
    append_json_value(out, v);
    out += fmt::format(R"(,"time":{}}})", time_ms);
}

// {"name":{"value":v,"time":ms},...} for one batch.
std::string properties(const core::DeviceConfig& d, const core::SampleBatch& b) {
    std::string out = "{";
    for (std::size_t i = 0; i < b.values.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, d.points[b.values[i].point_index].name);
        out += ':';
        append_property(out, b.values[i].value, b.timestamp_ms);
    }
    return out + "}";
}

// {"name":[{"value":v,"time":ms},...],...} for several batches of one device, in time order.
std::string history(const core::DeviceConfig& d, const std::vector<const core::SampleBatch*>& batches) {
    std::vector<std::string> per_point(d.points.size());
    for (const auto* b : batches) {
        for (const auto& pv : b->values) {
            std::string& s = per_point[pv.point_index];
            s += s.empty() ? "[" : ",";
            append_property(s, pv.value, b->timestamp_ms);
        }
    }
    std::string out = "{";
    bool first = true;
    for (std::size_t p = 0; p < per_point.size(); ++p) {
        if (per_point[p].empty()) continue;
        if (!first) out += ',';
        first = false;
        append_json_string(out, d.points[p].name);
        out += ':' + per_point[p] + ']';
    }
    return out + "}";
}

class OnenetThingModel : public OnenetBase {
public:
    using OnenetBase::OnenetBase;

    std::vector<std::string> subscriptions(const SessionInfo& s) const override { return {prefix(s) + "thing/#"}; }

    std::vector<Message> on_connect(const SessionInfo& s, std::uint32_t& next_id) const override {
        std::vector<Message> out;
        const std::string p = prefix(s) + "thing/";
        const auto now_s = static_cast<std::int64_t>(std::time(nullptr));
        for (auto index : s.devices) {
            const auto& d = s.device(index);
            if (&d == s.identity) continue;
            std::string err;
            auto token = token_for(cloud_, product_of(d), d, now_s, &err);
            if (!token) continue;  // refused by config validation already; nothing safe to send
            std::string ident = R"({"productID":)";
            append_json_string(ident, product_of(d));
            ident += R"(,"deviceName":)";
            append_json_string(ident, d.name);
            std::string add = R"({"id":")" + next_id_text(next_id) + R"(","version":"1.0","params":)" +
                              ident + R"(,"sasToken":)";
            append_json_string(add, *token);
            out.push_back({p + "sub/topo/add", add + "}}", 0});
            out.push_back({p + "sub/login",
                           R"({"id":")" + next_id_text(next_id) + R"(","version":"1.0","params":)" + ident + "}}", 0});
        }
        return out;
    }

    std::vector<Message> build(const SessionInfo& s, std::deque<core::SampleBatch>& pending,
                               std::size_t max_messages, std::uint32_t& next_id) const override {
        std::vector<Message> out;
        const bool gateway = s.identity->gateway;
        while (!pending.empty() && out.size() < max_messages) {
            // Group the oldest batches by device: at most 10 devices, 100 batches per device.
            std::vector<std::pair<std::uint32_t, std::vector<const core::SampleBatch*>>> groups;
            std::size_t used = 0;
            const std::size_t budget = batches_within_budget(pending, pending.size());
            for (const auto& b : pending) {
                if (used == budget) break;
                auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == b.device_index; });
                if (g == groups.end()) {
                    if (groups.size() == (gateway ? kMaxPackDevices : 1)) break;
                    groups.push_back({b.device_index, {}});
                    g = groups.end() - 1;
                } else if (g->second.size() == kMaxBatchesPerMessage) {
                    break;
                }
                g->second.push_back(&b);
                ++used;
            }
            const bool single = std::all_of(groups.begin(), groups.end(), [](const auto& g) { return g.second.size() == 1; });
            Message m;
            m.payload = R"({"id":")" + next_id_text(next_id) + R"(","version":"1.0","params":)";
            if (!gateway && single) {
                m.topic = prefix(s) + "thing/property/post";
                m.payload += properties(*s.identity, *groups[0].second[0]);
            } else {
                m.topic = prefix(s) + (single ? "thing/pack/post" : "thing/history/post");
                m.payload += '[';
                for (std::size_t i = 0; i < groups.size(); ++i) {
                    const auto& d = s.device(groups[i].first);
                    if (i) m.payload += ',';
                    m.payload += '{';
                    if (&d != s.identity) {
                        m.payload += R"("identity":{"productID":)";
                        append_json_string(m.payload, product_of(d));
                        m.payload += R"(,"deviceName":)";
                        append_json_string(m.payload, d.name);
                        m.payload += "},";
                    }
                    m.payload += R"("properties":)";
                    m.payload += single ? properties(d, *groups[i].second[0]) : history(d, groups[i].second);
                    m.payload += '}';
                }
                m.payload += ']';
            }
            m.payload += '}';
            for (std::size_t i = 0; i < used; ++i) {
                m.samples += pending.front().values.size();
                pending.pop_front();
            }
            out.push_back(std::move(m));
        }
        return out;
    }

    Inbound on_message(const SessionInfo& s, const std::string& topic, const std::string& payload,
                       const LatestValues& latest) const override {
        Inbound in;
        const std::string p = prefix(s) + "thing/";
        if (topic.rfind(p, 0) != 0) {
            in.kind = "unexpected";
            in.problem = "message on a topic this platform does not use";
            return in;
        }
        const std::string suffix = topic.substr(p.size());
        in.kind = suffix;
        if (is_own_uplink(suffix)) {
            in.kind = "echo";  // our own publish coming back through thing/# (brokers without no-local)
            return in;
        }
        auto j = parse_object(payload);
        auto id = j ? id_of(*j) : std::nullopt;
        if (!j || !id) {
            in.malformed = true;
            in.problem = "malformed message (expected a JSON object with an \"id\"): " + payload.substr(0, 120);
            return in;
        }
        if (ends_with(suffix, "/reply")) {  // the platform answering one of our requests
            const auto code = int_of(*j, "code");
            if (code != kCodeOk) {
                in.error_reply = true;
                in.problem = fmt::format("request {} failed: code {} {}", *id, code.value_or(-1), text_of(*j, "msg"));
            }
            return in;
        }
        const std::string answer_topic = prefix(s) + "thing/" + suffix + "_reply";
        in.command = true;
        if (suffix == "property/get" || suffix == "sub/property/get") {
            return property_get(s, *j, *id, suffix == "sub/property/get", answer_topic, latest, std::move(in));
        }
        if (suffix == "sub/topo/change") {
            in.replies.push_back({answer_topic, reply(*id, kCodeOk, "success"), 0});
            return in;
        }
        if (suffix == "property/set" || suffix == "sub/property/set" || suffix == "sub/service/invoke" ||
            (suffix.rfind("service/", 0) == 0 && ends_with(suffix, "/invoke"))) {
            in.refused = true;
            in.problem = "refused: " + std::string(kNoWrites);
            in.replies.push_back({answer_topic, reply(*id, kCodeFailed, kNoWrites), 0});
            return in;
        }
        in.command = false;
        in.kind = "unexpected";
        in.problem = "message on a topic this platform does not use";
        return in;
    }

private:
    const std::string& product_of(const core::DeviceConfig& d) const {
        return d.product_id.empty() ? cloud_.product_id : d.product_id;
    }

    Inbound property_get(const SessionInfo& s, const Json& j, const std::string& id, bool sub,
                         const std::string& answer_topic, const LatestValues& latest, Inbound in) const {
        const Json* params = j.contains("params") ? &j["params"] : nullptr;
        const core::DeviceConfig* target = s.identity;
        if (sub && params && params->is_object()) {
            const std::string name = text_of(*params, "deviceName");
            target = nullptr;
            for (auto index : s.devices) {
                if (s.device(index).name == name) target = &s.device(index);
            }
            params = params->contains("params") ? &(*params)["params"] : nullptr;
        }
        if (!target || !params || !params->is_array()) {
            in.refused = true;
            in.problem = target ? "property get without a list of identifiers" : "property get for an unknown sub-device";
            in.replies.push_back({answer_topic, reply(id, kCodeFailed, in.problem), 0});
            return in;
        }
        const auto index = static_cast<std::uint32_t>(target - s.cfg->devices.data());
        auto values = latest.find(index);
        std::string data = "{";
        for (const auto& want : *params) {
            const std::string name = want.is_string() ? want.get<std::string>() : std::string();
            auto p = std::find_if(target->points.begin(), target->points.end(), [&](const auto& pt) { return pt.name == name; });
            const auto pi = static_cast<std::size_t>(p - target->points.begin());
            if (p == target->points.end() || values == latest.end() || !values->second[pi]) {
                in.refused = true;
                in.problem = "property get: unknown or not yet read identifier '" + name + "'";
                in.replies.push_back({answer_topic, reply(id, kCodeFailed, in.problem), 0});
                return in;
            }
            if (data.size() > 1) data += ',';
            append_json_string(data, name);
            data += ':';
            append_json_value(data, *values->second[pi]);
        }
        in.replies.push_back({answer_topic, reply(id, kCodeOk, "success", data + "}"), 0});
        return in;
    }
};

}  // namespace

std::string onenet_dp_payload(const core::DeviceConfig& d, const std::deque<core::SampleBatch>& batches,
                              std::size_t count, std::uint32_t id) {
    // Group samples by datastream, keeping acquisition order: {"id":N,"dp":{name:[{"v":..,"t":..}]}}
    std::vector<std::string> streams(d.points.size());
    for (std::size_t i = 0; i < count; ++i) {
        const auto& b = batches[i];
        const std::int64_t t = b.timestamp_ms / 1000;
        for (const auto& pv : b.values) {
            std::string& s = streams[pv.point_index];
            s += s.empty() ? "[" : ",";
            s += "{\"v\":";
            append_json_value(s, pv.value);
            fmt::format_to(std::back_inserter(s), ",\"t\":{}}}", t);
        }
    }
    std::string out = fmt::format("{{\"id\":{},\"dp\":{{", id);
    bool first = true;
    for (std::size_t p = 0; p < streams.size(); ++p) {
        if (streams[p].empty()) continue;
        if (!first) out += ',';
        first = false;
        append_json_string(out, d.points[p].name);
        out += ':';
        out += streams[p];
        out += ']';
    }
    out += "}}";
    return out;
}

std::unique_ptr<Profile> make_onenet_datapoints(const core::CloudConfig& c) { return std::make_unique<OnenetDatapoints>(c); }
std::unique_ptr<Profile> make_onenet_thing_model(const core::CloudConfig& c) { return std::make_unique<OnenetThingModel>(c); }

}  // namespace fieldlink::north
