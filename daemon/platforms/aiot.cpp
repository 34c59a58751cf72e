// DaShi AIoT (Aliyun style, protocols.md §4): signed login, property report on
// sys/{pid}/{did}/thing/properties/up, property set and service invoke answered on their
// /response topics.
#include <fmt/format.h>

#include "config/writes.hpp"
#include "core/crypto.hpp"
#include "core/log.hpp"
#include "core/value.hpp"
#include "platforms/aiot.hpp"
#include "platforms/json.hpp"
#include "platforms/platform.hpp"

namespace fieldlink::platforms {

std::optional<std::string> aiot_sign(std::string_view client_id, std::string_view device_id,
                                     std::string_view product_id, std::string_view timestamp, std::string_view secret,
                                     std::string_view method) {
    const std::string content = "clientId" + std::string(client_id) + "deviceId" + std::string(device_id) +
                                "productId" + std::string(product_id) + "timestamp" + std::string(timestamp);
    auto digest = core::hmac(method, secret, content);
    if (!digest) return std::nullopt;
    return core::hex_lower(*digest);
}

namespace {

constexpr int kAiotOk = 200;
constexpr int kCodeRefused = 400;  // "request error" (Aliyun device code family)

// protocols.md §4: 200 success; 429 too many requests passes; 400 request error and 460
// parameter error are the message's own fault; other codes are retried a few times.
north::Answer::Outcome aiot_outcome(std::optional<long long> code) {
    using O = north::Answer::Outcome;
    if (!code) return O::unknown;
    if (*code == kAiotOk) return O::accepted;
    if (*code == 429) return O::transient;
    if (*code == 400 || *code == 460) return O::permanent;
    return O::unknown;
}

class Aiot : public north::Profile {
  public:
    using north::Profile::Profile;
    // DaShi publishes no login rule: OneNET's (3 in 5 s), as a courtesy to a platform of the same family.
    north::LoginLimit login_limit() const override { return {3, std::chrono::milliseconds(5000)}; }
    const char* credentials_hint() const override { return "the product key, device name and device secret"; }

    std::optional<north::Credentials> credentials(const north::SessionInfo& s, std::int64_t,
                                                  std::string* error) const override {
        const auto& d = *s.identity;
        const std::string ts = std::to_string(core::unix_ms_now());
        core::SampleBatch empty;
        const std::string cid = expand_template(cloud_.client_id, d, empty, nullptr);
        auto sign = aiot_sign(cid, did(d), cloud_.product_id, ts, d.key, cloud_.token_method);
        if (!sign) {
            if (error) *error = "unknown sign method " + cloud_.token_method;
            return std::nullopt;
        }
        const std::string client_id = cid + "|securemode=" + (cloud_.tls ? "2" : "3") + ",signmethod=hmac" +
                                      cloud_.token_method + ",timestamp=" + ts + "|";
        return north::Credentials{client_id, did(d) + "&" + cloud_.product_id, *sign, 0, std::nullopt};
    }

    std::vector<std::string> subscriptions(const north::SessionInfo& s) const override {
        const std::string p = prefix(*s.identity);
        return {p + "properties/up/response", p + "event/up/response", p + "properties/set", p + "service/set"};
    }

    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t& next_id) const override {
        std::vector<north::Packet> out;
        const auto& d = *s.identity;
        const auto limit = max_payload();
        while (!pending.empty() && out.size() < max_packets) {
            north::Packet p;
            const std::string topic = prefix(d) + "properties/up";
            const core::SampleBatch& b = pending.front();
            const auto evs = events_of(d, b);
            core::SampleBatch props;  // the set without its events, when it has some
            if (!evs.empty()) {
                props.device_index = b.device_index;
                props.timestamp_ms = b.timestamp_ms;
                for (const auto& pv : b.values) {
                    if (!is_event(d, pv)) props.values.push_back(pv);
                }
            }
            const core::SampleBatch& set = evs.empty() ? b : props;
            if (!set.values.empty()) {  // properties/up unless the set has events only
                const std::uint32_t id = north::take_message_id(next_id);
                if (std::string payload = properties_up(d, set, id); payload.size() <= limit) {
                    p.messages.emplace_back(topic, std::move(payload), set.values.size(), std::to_string(id));
                } else {  // one sample set larger than a message: its values over several
                    const auto render = [&](const core::SampleBatch& part) {
                        return properties_up(d, part, north::kLongestMessageId);
                    };
                    for (const auto& part : north::split_values(set, limit, render)) {
                        const std::uint32_t part_id = north::take_message_id(next_id);
                        p.messages.emplace_back(topic, properties_up(d, part, part_id), part.values.size(),
                                                std::to_string(part_id));
                    }
                }
            }
            for (const auto& [name, values] : evs) {  // one event/up per event
                const std::uint32_t id = north::take_message_id(next_id);
                p.messages.emplace_back(prefix(d) + "event/up", event_up(d, b, name, values, id), values.size(),
                                        std::to_string(id));
            }
            north::take_front(pending, p);
            out.push_back(std::move(p));
        }
        return out;
    }

    // {"id","version","sys":{"ack":1},"identifier":event,"params":{"value":{..},"time":ms},"method":"thing.event.up"}
    static std::string event_up(const config::DeviceConfig& d, const core::SampleBatch& b, const std::string& name,
                                const std::vector<std::size_t>& values, std::uint32_t id) {
        std::string out = fmt::format(R"({{"id":"{}","version":"1.0","sys":{{"ack":1}},"identifier":)", id);
        append_json_string(out, name);
        out += R"(,"params":{"value":)";
        append_event_params(out, d, b, values);
        out += fmt::format(R"(,"time":{}}},"method":"thing.event.up"}})", b.timestamp_ms);
        return out;
    }

    static std::string properties_up(const config::DeviceConfig& d, const core::SampleBatch& b, std::uint32_t id) {
        std::string params = "{";
        for (const auto& pv : b.values) {
            if (params.size() > 1) params += ',';
            append_json_string(params, d.points[pv.point_index].name);
            params += R"(:{"value":)";
            append_json_value(params, pv.value);
            params += fmt::format(R"(,"time":{}}})", b.timestamp_ms);
        }
        return fmt::format(
            R"({{"id":"{}","version":"1.0","sys":{{"ack":1}},"params":{}}},"method":"thing.properties.up"}})", id,
            params);
    }

    north::Inbound on_message(const north::SessionInfo& s, const std::string& topic, const std::string& payload,
                              const north::LatestValues&, std::uint32_t&) const override {
        north::Inbound in;
        const std::string p = prefix(*s.identity);
        auto j = parse_object(payload);
        auto id = j ? id_of(*j) : std::nullopt;
        if (topic == p + "properties/up/response" || topic == p + "event/up/response") {
            in.kind = topic.substr(p.size());
            if (!id) {
                in.malformed = true;
                in.problem = "malformed answer (expected a JSON object with an \"id\"): " + payload.substr(0, 120);
                return in;
            }
            in.answer = make_answer(*id, *j, aiot_outcome(int_of(*j, "code")), "code", "message");
            return in;
        }
        const bool set = topic == p + "properties/set";
        if (!set && topic != p + "service/set") {
            in.kind = "unexpected";
            in.problem = "message on a topic this platform does not use";
            return in;
        }
        in.kind = set ? "properties/set" : "service/set";
        if (!id) {
            in.malformed = true;
            in.problem = "malformed request (expected a JSON object with an \"id\"): " + payload.substr(0, 120);
            return in;
        }
        in.command = true;
        north::Command c;
        c.kind = in.kind;
        c.id = *id;
        c.reply_topic = topic + "/response";
        c.detail = set ? std::string() : text_of(*j, "identifier");
        c.sets_state = set;  // a property set is a state; a service is an action
        std::string why;
        bool ok = false;
        const Json* params = j->contains("params") ? &(*j)["params"] : nullptr;
        if (const auto* pt = set ? nullptr : config::point_with_command(*s.identity, c.detail)) {
            auto v = config::accept_write(*pt, c.detail, &why);
            if (v) c.values.push_back({static_cast<std::uint32_t>(pt - s.identity->points.data()), std::move(*v)});
            ok = v.has_value();
        } else if (!params) {
            why = "no parameters to write";
        } else {
            ok = writes_of(*s.identity, *params, c.values, &why);
        }
        const std::string what = c.kind;
        return write_or_refuse(s, std::move(in), std::move(c), s.identity, ok, what, why);
    }

    // {"code":200,"data":{},"id":..,"message":"success","method":..,"version":"1.0"}; a service
    // also echoes its identifier and gives the values read back as its output (data.params).
    north::Message command_reply(const north::SessionInfo& s, const north::Command& c,
                                 const north::CommandResult& r) const override {
        const bool set = c.kind == "properties/set";
        Json data = Json::object();
        if (!set && r.ok) data["params"] = Json::parse(point_values_json(s.device(c.device), r.values), nullptr, false);
        Json out = {{"code", r.ok ? kAiotOk : kCodeRefused},
                    {"data", data},
                    {"id", c.id},
                    {"message", r.ok ? std::string("success") : r.reason},
                    {"method", set ? "thing.properties.set" : "thing.service.set"},
                    {"version", "1.0"}};
        if (!set) out["identifier"] = c.detail;
        return {c.reply_topic, dump(out), 0};
    }

  private:
    static const std::string& did(const config::DeviceConfig& d) { return d.device_id.empty() ? d.name : d.device_id; }
    std::string prefix(const config::DeviceConfig& d) const {
        return "sys/" + cloud_.product_id + "/" + did(d) + "/thing/";
    }
};

class AiotPlatform : public Platform {
  public:
    const char* name() const override { return "aiot"; }

    void check_cloud(config::CloudConfig& c, config::Checker& check) const override {
        require(check, c, c.product_id, "product_id");
        if (c.token_method.empty()) c.token_method = "sha1";
        payload_limit(check, c, std::uint64_t{256} * 1024, std::uint64_t{256} << 20,
                      "the MQTT maximum");  // DaShi publishes no limit
    }

    void check_device(const config::Config& cfg, std::size_t index, config::Checker& check) const override {
        Platform::check_device(cfg, index, check);
        const auto& d = cfg.devices[index];
        // The name is a level of /sys/{product}/{device}/... and part of the client id.
        if (d.name.size() > 64 ||
            d.name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                     "_-.@:") != std::string::npos) {
            check.fail(d.mark, config::device_path(index) + ".name",
                       "DaShi device names are 1..64 characters of A-Z a-z 0-9 _ - . @ :; got '" +
                           core::printable(d.name, 64) + "'");
        }
        if (d.key.empty()) {
            check.fail(d.mark, config::device_path(index),
                       "device '" + d.name + "' needs 'key' (its deviceSecret) to sign the DaShi login");
        }
    }

    std::unique_ptr<north::Profile> make_profile(const config::CloudConfig& c) const override {
        return std::make_unique<Aiot>(c);
    }
};

}  // namespace

const Platform& aiot_platform() {
    static const AiotPlatform p;
    return p;
}

}  // namespace fieldlink::platforms
