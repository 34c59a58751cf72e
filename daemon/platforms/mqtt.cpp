// Generic MQTT: topic, client id and payload from templates; optional user name and password.
#include "platforms/json.hpp"
#include "platforms/platform.hpp"

namespace fieldlink::platforms {
namespace {

// The platform's own keys and their defaults.
const char* const kTopic = "fieldlink/{device}";
const char* const kPayload = R"({"ts":{ts_ms},"values":{values}})";

class MqttTemplate : public north::Profile {
  public:
    explicit MqttTemplate(const config::CloudConfig& c)
        : north::Profile(c),
          topic_(c.option_or("topic", kTopic)),
          payload_(c.option_or("payload", kPayload)),
          status_topic_(c.option_or("status_topic", "")),
          command_topic_(c.option_or("command_topic", "")),
          reply_topic_(c.option_or("reply_topic", "")),
          config_topic_(c.option_or("config_topic", "")),
          diagnostics_topic_(c.option_or("diagnostics_topic", "")),
          per_point_(topic_.find("{point}") != std::string::npos) {}

    std::optional<north::Credentials> credentials(const north::SessionInfo& s, std::int64_t,
                                                  std::string*) const override {
        core::SampleBatch empty;
        return north::Credentials{expand_template(cloud_.client_id, *s.identity, empty, nullptr), cloud_.username,
                                  cloud_.password, 0, std::nullopt};
    }

    // One packet per batch: one message, or one per point with a {point} topic.
    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t&) const override {
        std::vector<north::Packet> out;
        while (!pending.empty() && out.size() < max_packets) {
            north::Packet p;
            const core::SampleBatch b = north::take_front(pending, p);
            const auto& d = s.device(b.device_index);
            if (per_point_) {
                for (const auto& pv : b.values) {
                    p.messages.emplace_back(expand_template(topic_, d, b, &pv), expand_template(payload_, d, b, &pv),
                                            1);
                }
            } else if (std::string payload = expand_template(payload_, d, b, nullptr);
                       payload.size() <= max_payload()) {
                p.messages.emplace_back(expand_template(topic_, d, b, nullptr), std::move(payload), b.values.size());
            } else {  // one sample set larger than a message: its values over several
                const auto render = [&](const core::SampleBatch& part) {
                    return expand_template(payload_, d, part, nullptr);
                };
                for (const auto& part : north::split_values(b, max_payload(), render)) {
                    p.messages.emplace_back(expand_template(topic_, d, part, nullptr), render(part),
                                            part.values.size());
                }
            }
            out.push_back(std::move(p));
        }
        return out;
    }

    int qos() const override { return cloud_.qos; }

    // Every device online on connect (held back for a device whose unit does not answer, which
    // is told offline instead); then each change, retained so a late subscriber sees the state.
    bool presence_on_connect() const override { return !status_topic_.empty(); }
    std::vector<north::Message> on_connect(const north::SessionInfo& s, const north::LatestValues&,
                                           std::uint32_t&) const override {
        std::vector<north::Message> out;
        if (status_topic_.empty()) return out;
        for (auto index : s.devices) out.push_back(status(s, index, true, {}));
        return out;
    }
    std::vector<north::Message> presence(const north::SessionInfo& s, std::uint32_t device, bool online,
                                         const std::string& reason, const north::LatestValues&,
                                         std::uint32_t&) const override {
        if (status_topic_.empty()) return {};
        return {status(s, device, online, reason)};
    }
    // A broker has no login rule; 3 in 5 s keeps a crash loop from hammering it.
    north::LoginLimit login_limit() const override { return {3, std::chrono::milliseconds(5000)}; }

    std::vector<std::string> subscriptions(const north::SessionInfo& s) const override {
        std::vector<std::string> out;
        if (!command_topic_.empty()) out.push_back(command_topic(*s.identity, "+"));
        if (s.channel && cloud_.remote_config && !config_topic_.empty()) out.push_back(config_topic_);
        if (s.channel && cloud_.diagnostics && !diagnostics_topic_.empty()) out.push_back(diagnostics_topic_);
        return out;
    }

    // The report of a pushed configuration: retained on config_topic/state (a fleet's dashboard
    // sees each gateway's state when it subscribes).
    std::vector<north::Message> config_report(const north::SessionInfo&, const north::ConfigReport& r,
                                              std::uint32_t&) const override {
        north::Message m(config_topic_ + "/state", dump(config_report_json(r, "")), 0);
        m.retain = true;
        return {m};
    }

    // A command: on the device's command topic, a JSON object of points (with an optional "id"
    // echoed in the reply), a command name ("on") or point=value; on a {point} topic, the value.
    // An empty message (how a retained one is cleared) is none.
    north::Inbound on_message(const north::SessionInfo& s, const std::string& topic, const std::string& payload,
                              const north::LatestValues&, std::uint32_t&) const override {
        north::Inbound in;
        if (s.channel && !diagnostics_topic_.empty() && topic == diagnostics_topic_) {
            in.kind = "diagnostics";
            if (payload.empty()) return in;
            const Json j = parse_json(payload);
            in.diagnostics = diag_request_of(j);
            if (j.is_object()) in.diagnostics->id = id_of(j).value_or("");
            in.diagnostics->reply_topic = diagnostics_topic_ + "/reply";
            return in;
        }
        if (s.channel && topic == config_topic_) {
            in.kind = "configuration";
            if (payload.empty()) return in;  // a retained configuration being cleared
            const Json j = parse_json(payload);
            if (j.is_discarded()) {  // not JSON: the main file's YAML as it is
                in.config_push.emplace();
                in.config_push->text = payload;
            } else {
                in.config_push = config_push_of(j);
            }
            return in;
        }
        const auto& d = *s.identity;
        std::string point;
        if (command_topic_.empty() || !matches(d, topic, &point)) {
            in.kind = "unexpected";
            in.problem = "message on a topic this gateway does not use";
            return in;
        }
        in.kind = "command";
        if (payload.empty()) return in;  // a retained command being cleared: not a command
        in.command = true;
        north::Command c;
        c.kind = "command";
        c.reply_topic = reply_topic(d, point);
        std::string why;
        bool ok = false;
        if (point.empty()) {
            ok = plain_command(d, payload, c.values, &c.id, &why, &c.requested_ms, &c.sets_state);
        } else {
            c.sets_state = true;
            Json one = Json::object();
            const Json v = parse_json(payload);
            one[point] = v.is_discarded() ? Json(payload) : v;
            ok = writes_of(d, one, c.values, &why);
        }
        return write_or_refuse(s, std::move(in), std::move(c), s.identity, ok, "command", why);
    }

    // {"id":..,"ok":true,"result":..} or {"id":..,"ok":false,"error":..} on diagnostics_topic/reply.
    north::Message diagnostics_reply(const north::SessionInfo&, const north::DiagRequest& q, bool ok,
                                     const std::string& result) const override {
        Json out = diag_answer_json(ok, result);
        if (!q.id.empty()) out["id"] = q.id;
        return {q.reply_topic, dump(out), 0};
    }

    // {"id":..,"success":true,"values":{read back}} or {"id":..,"success":false,"error":..}
    // ("id" only when the command gave one).
    north::Message command_reply(const north::SessionInfo& s, const north::Command& c,
                                 const north::CommandResult& r) const override {
        Json out = Json::object();
        if (!c.id.empty()) out["id"] = c.id;
        out["success"] = r.ok;
        if (r.ok) {
            out["values"] = Json::parse(point_values_json(s.device(c.device), r.values), nullptr, false);
        } else {
            out["error"] = r.reason;
        }
        return {c.reply_topic, dump(out), 0};
    }

  private:
    north::Message status(const north::SessionInfo& s, std::uint32_t index, bool online,
                          const std::string& reason) const {
        core::SampleBatch empty;
        Json j = Json::object();
        j["online"] = online;
        if (!online && !reason.empty()) j["reason"] = reason;
        j["ts"] = core::unix_ms_now();
        north::Message m(expand_template(status_topic_, s.device(index), empty, nullptr), dump(j), 0);
        m.retain = true;
        if (online) m.logs_in = index;  // held back while the unit does not answer
        return m;
    }
    std::string command_topic(const config::DeviceConfig& d, const std::string& point) const {
        core::SampleBatch empty;
        std::string t = expand_template(command_topic_, d, empty, nullptr);
        if (auto at = t.find("{point}"); at != std::string::npos) t.replace(at, 7, point);
        return t;
    }
    std::string reply_topic(const config::DeviceConfig& d, const std::string& point) const {
        if (reply_topic_.empty()) return command_topic(d, point) + "/reply";
        core::SampleBatch empty;
        std::string t = expand_template(reply_topic_, d, empty, nullptr);
        if (auto at = t.find("{point}"); at != std::string::npos) t.replace(at, 7, point);
        return t;
    }
    // Whether `topic` is the device's command topic; with a {point} level, that level's name.
    bool matches(const config::DeviceConfig& d, const std::string& topic, std::string* point) const {
        const std::string t = command_topic(d, "\x01");
        const auto at = t.find('\x01');
        if (at == std::string::npos) return topic == t;
        const std::string head = t.substr(0, at), tail = t.substr(at + 1);
        if (topic.size() <= head.size() + tail.size() || topic.compare(0, head.size(), head) != 0 ||
            topic.compare(topic.size() - tail.size(), tail.size(), tail) != 0) {
            return false;
        }
        *point = topic.substr(head.size(), topic.size() - head.size() - tail.size());
        return point->find('/') == std::string::npos;
    }

    std::string topic_, payload_;
    // A device's liveness, retained: {"online":true|false,"reason":..,"ts":ms} ("" : none).
    std::string status_topic_;
    // Commands: subscribed per device ({device}; a {point} level takes the point's name and the
    // payload its value); replies go to reply_topic (default: the command topic + /reply).
    std::string command_topic_, reply_topic_;
    // Configuration pushed to the gateway (remote_config): JSON or YAML here; reports on /state.
    std::string config_topic_;
    // Diagnostics requests (diagnostics: true): JSON here, answers on /reply.
    std::string diagnostics_topic_;
    bool per_point_;
};

class MqttPlatform : public Platform {
  public:
    const char* name() const override { return "mqtt"; }
    std::vector<OwnKey> own_keys() const override {
        return {{"topic", "the generic MQTT data topic; other platforms have their own"},
                {"payload", "the generic MQTT payload template; other platforms have their own"},
                {"command_topic", "the generic MQTT command topic; other platforms have their own"},
                {"reply_topic", "the generic MQTT reply topic; other platforms have their own"},
                {"status_topic", "the generic MQTT device status topic; other platforms show it their own way"},
                {"config_topic", "the generic MQTT topic of configuration pushed to the gateway (remote_config)"},
                {"diagnostics_topic", "the generic MQTT topic of diagnostics requests (diagnostics)"}};
    }
    bool takes_remote_config(const config::CloudConfig&) const override { return true; }
    const char* remote_config_where() const override { return "mqtt (config_topic)"; }
    void check_cloud(config::CloudConfig& c, config::Checker& check) const override {
        payload_limit(check, c, std::uint64_t{256} * 1024, std::uint64_t{256} << 20, "the MQTT maximum");
        if (c.remote_config && c.option_or("config_topic", "").empty()) {
            check.fail(c.mark_of("remote_config"), config::cloud_path(c) + ".config_topic",
                       "remote_config needs config_topic: the topic this gateway takes its configuration from "
                       "(one per gateway, like site17/gw1/config); its state is reported on <config_topic>/state");
        }
        if (c.diagnostics && c.option_or("diagnostics_topic", "").empty()) {
            check.fail(c.mark_of("diagnostics"), config::cloud_path(c) + ".diagnostics_topic",
                       "diagnostics needs diagnostics_topic: the topic this gateway takes diagnostics requests from "
                       "(one per gateway, like site17/gw1/diag); answers go to <diagnostics_topic>/reply");
        }
        for (const char* key : {"command_topic", "reply_topic", "status_topic", "config_topic", "diagnostics_topic"}) {
            if (c.option_or(key, "").find_first_of("+#") != std::string::npos) {
                check.fail(c.mark_of(key), config::cloud_path(c) + "." + key,
                           "no MQTT wildcards (+ #) here: {device} and {point} stand for the device's and the "
                           "point's name");
            }
        }
        const std::string command_topic = c.option_or("command_topic", "");
        if (const auto at = command_topic.find("{point}"); at != std::string::npos) {
            const bool level = (at == 0 || command_topic[at - 1] == '/') &&
                               (at + 7 == command_topic.size() || command_topic[at + 7] == '/');
            if (!level || command_topic.find("{point}", at + 1) != std::string::npos) {
                check.fail(c.mark_of("command_topic"), config::cloud_path(c) + ".command_topic",
                           "{point} may appear once, as a whole topic level (like fieldlink/{device}/set/{point})");
            }
        }
    }
    std::unique_ptr<north::Profile> make_profile(const config::CloudConfig& c) const override {
        return std::make_unique<MqttTemplate>(c);
    }
};

}  // namespace

const Platform& mqtt_platform() {
    static const MqttPlatform p;
    return p;
}

}  // namespace fieldlink::platforms
