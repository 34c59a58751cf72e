// OneNET thing model (OneNET Studio OneJSON, protocols.md §2.1-2.5), direct devices and gateways:
// property/post for one sample set, event/post for events (with properties: pack/post),
// history/post for a backlog, and for a gateway its topology (topo/add with each sub-device's
// sasToken), sub-device login and pack/post with identities.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "config/writes.hpp"
#include "platforms/json.hpp"
#include "platforms/onenet.hpp"

namespace fieldlink::platforms {
namespace {

constexpr std::size_t kMaxBatchesPerDevice = 100;  // OneNET: 100 values per point in history/post
constexpr std::size_t kMaxPackDevices = 10;        // pack/post: at most 10 devices per message

// protocols.md §2.2: 200 success; 303 internal error and 308 device not online (a sub-device
// whose login is still on its way) pass; format, type, model, identity and id errors do not.
north::Answer::Outcome thing_model_outcome(std::optional<long long> code) {
    using O = north::Answer::Outcome;
    if (!code) return O::unknown;
    switch (*code) {
        case kCodeOk:
            return O::accepted;
        case 303:
        case 308:
            return O::transient;
        case 301:
        case 302:
        case 305:
        case 307:
        case 309:
        case 312:
        case 313:
            return O::permanent;
        default:
            return O::unknown;
    }
}

// The service that carries a pushed configuration and the event that reports it (remote_config).
constexpr const char* kConfigService = "fieldlink_config";
// The service that answers diagnostics requests (diagnostics).
constexpr const char* kDiagnosticsService = "fieldlink_diagnostics";

std::string next_id_text(std::uint32_t& next_id) {
    return std::to_string(north::take_message_id(next_id));
}

// Topics the device itself publishes under thing/: requests and answers to platform requests.
bool is_own_uplink(const std::string& suffix) {
    static const char* const own[] = {
        "property/post", "pack/post",           "history/post",         "event/post",
        "sub/login",     "sub/logout",          "sub/topo/add",         "sub/topo/delete",
        "sub/topo/get",  "sub/topo/get/result", "property/desired/get", "property/desired/delete"};
    for (const char* o : own) {
        if (suffix == o) return true;
    }
    return ends_with(suffix, "_reply");
}

void append_property(std::string& out, const core::Value& v, std::int64_t time_ms) {
    out += R"({"value":)";
    append_json_value(out, v);
    out += fmt::format(R"(,"time":{}}})", time_ms);
}

// {"name":{"value":v,"time":ms},...} for one batch: its properties (attributes are properties here).
std::string properties(const config::DeviceConfig& d, const core::SampleBatch& b) {
    std::string out = "{";
    for (const auto& pv : b.values) {
        if (is_event(d, pv)) continue;
        if (out.size() > 1) out += ',';
        append_json_string(out, d.points[pv.point_index].name);
        out += ':';
        append_property(out, pv.value, b.timestamp_ms);
    }
    return out + "}";
}

// {"event":{"value":{"point":v,...},"time":ms},...} for one batch: its events.
std::string events(const config::DeviceConfig& d, const core::SampleBatch& b, const EventValues& evs) {
    std::string out = "{";
    for (const auto& [name, values] : evs) {
        if (out.size() > 1) out += ',';
        append_json_string(out, name);
        out += R"(:{"value":)";
        append_event_params(out, d, b, values);
        out += fmt::format(R"(,"time":{}}})", b.timestamp_ms);
    }
    return out + "}";
}

// "properties":{"name":[{"value":v,"time":ms},...],...} and "events":{"event":[...],...} for
// several batches of one device, in time order (either part left out when empty).
std::string history(const config::DeviceConfig& d, const std::vector<const core::SampleBatch*>& batches) {
    std::vector<std::string> per_point(d.points.size());
    std::vector<std::pair<std::string, std::string>> per_event;
    for (const auto* b : batches) {
        for (const auto& pv : b->values) {
            if (is_event(d, pv)) continue;
            std::string& s = per_point[pv.point_index];
            s += s.empty() ? "[" : ",";
            append_property(s, pv.value, b->timestamp_ms);
        }
        for (const auto& ev : events_of(d, *b)) {
            const std::string& name = ev.first;
            auto it = std::find_if(per_event.begin(), per_event.end(), [&](const auto& e) { return e.first == name; });
            if (it == per_event.end()) {
                per_event.emplace_back(name, "[");
                it = per_event.end() - 1;
            } else {
                it->second += ',';
            }
            it->second += R"({"value":)";
            append_event_params(it->second, d, *b, ev.second);
            it->second += fmt::format(R"(,"time":{}}})", b->timestamp_ms);
        }
    }
    std::string out;
    for (std::size_t p = 0; p < per_point.size(); ++p) {
        if (per_point[p].empty()) continue;
        out += out.empty() ? R"("properties":{)" : ",";
        append_json_string(out, d.points[p].name);
        out += ':' + per_point[p] + ']';
    }
    if (!out.empty()) out += '}';
    for (std::size_t e = 0; e < per_event.size(); ++e) {
        out += e ? "," : (out.empty() ? R"("events":{)" : R"(,"events":{)");
        append_json_string(out, per_event[e].first);
        out += ':' + per_event[e].second + ']';
    }
    if (!per_event.empty()) out += '}';
    return out;
}

// "properties":{..} and "events":{..} of one batch (either left out when empty).
std::string properties_and_events(const config::DeviceConfig& d, const core::SampleBatch& b) {
    const auto evs = events_of(d, b);
    std::string out;
    if (evs.empty() || has_properties(d, b)) out = R"("properties":)" + properties(d, b);
    if (!evs.empty()) out += (out.empty() ? R"("events":)" : R"(,"events":)") + events(d, b, evs);
    return out;
}

// Batches of one message, per device: (device index, positions in the pending queue).
using Groups = std::vector<std::pair<std::uint32_t, std::vector<std::size_t>>>;

class OnenetThingModel : public OnenetProfile {
  public:
    using OnenetProfile::OnenetProfile;

    // One session per device, except that a gateway's session also carries its sub-devices.
    std::vector<north::SessionInfo> sessions(const config::Config& cfg, std::size_t cloud_index) const override {
        std::vector<north::SessionInfo> out;
        std::vector<std::ptrdiff_t> session_of(cfg.devices.size(), -1);
        for (std::uint32_t i = 0; i < cfg.devices.size(); ++i) {
            const auto& d = cfg.devices[i];
            if (d.cloud_index != cloud_index || d.via_index) continue;
            session_of[i] = static_cast<std::ptrdiff_t>(out.size());
            out.push_back(north::SessionInfo{&cfg, &cloud_, &d, {i}, d.name, nullptr});
        }
        for (std::uint32_t i = 0; i < cfg.devices.size(); ++i) {
            const auto& d = cfg.devices[i];
            if (d.cloud_index == cloud_index && d.via_index && session_of[*d.via_index] >= 0) {
                out[static_cast<std::size_t>(session_of[*d.via_index])].devices.push_back(i);
            }
        }
        return out;
    }

    std::vector<std::string> subscriptions(const north::SessionInfo& s) const override {
        return {prefix(s) + "thing/#"};
    }

    // A gateway reads its topology first (topo/get, data waits for the answer) and adds only the
    // sub-devices missing from it; each sub-device logs in once it is in the topology (after the
    // topo/add reply). Without an answer, every sub-device is added as if none were there.
    std::vector<north::Message> on_connect(const north::SessionInfo& s, const north::LatestValues&,
                                           std::uint32_t& next_id) const override {
        std::vector<std::uint32_t> subs;
        for (auto index : s.devices) {
            if (&s.device(index) != s.identity) subs.push_back(index);
        }
        if (subs.empty()) return {};
        const std::string id = next_id_text(next_id);
        north::Message get(prefix(s) + "thing/sub/topo/get", R"({"id":")" + id + R"(","version":"1.0"})", 0, id);
        get.gate = true;
        for (auto index : subs) {
            if (auto add = topo_add(s, index, next_id)) get.otherwise.push_back(std::move(*add));
        }
        return {std::move(get)};
    }

    // sub/topo/add for one sub-device (data waits for its reply), its login to follow the reply.
    std::optional<north::Message> topo_add(const north::SessionInfo& s, std::uint32_t index,
                                           std::uint32_t& next_id) const {
        const auto& d = s.device(index);
        std::string err;
        auto token = token_for(d, static_cast<std::int64_t>(std::time(nullptr)), nullptr, &err);
        if (!token) return std::nullopt;  // refused by config validation already; nothing safe to send
        const std::string ident = identity(d);
        const std::string add_id = next_id_text(next_id);
        std::string add = R"({"id":")" + add_id + R"(","version":"1.0","params":)" + ident.substr(0, ident.size() - 1) +
                          R"(,"sasToken":)";
        append_json_string(add, *token);
        add += "}}";
        north::Message m(prefix(s) + "thing/sub/topo/add", std::move(add), 0, add_id);
        m.gate = true;
        m.then.push_back(login(s, index, next_id));
        return m;
    }

    north::Message login(const north::SessionInfo& s, std::uint32_t index, std::uint32_t& next_id,
                         const char* what = "login") const {
        const std::string id = next_id_text(next_id);
        std::string payload = R"({"id":")" + id + R"(","version":"1.0","params":)";
        payload += identity(s.device(index));
        payload += '}';
        north::Message m(prefix(s) + "thing/sub/" + what, std::move(payload), 0, id);
        if (std::strcmp(what, "login") == 0) m.logs_in = index;
        return m;
    }

    // A sub-device whose unit stops answering is logged out, and logged in when it answers, so
    // the platform shows its real state. The gateway itself stays online with its connection.
    std::vector<north::Message> presence(const north::SessionInfo& s, std::uint32_t device, bool online,
                                         const std::string& /*reason: the platform's shape has no room*/,
                                         const north::LatestValues&, std::uint32_t& next_id) const override {
        if (&s.device(device) == s.identity) return {};
        return {login(s, device, next_id, online ? "login" : "logout")};
    }

    // Configured sub-devices missing from a topology list [{productID, deviceName}, ...]:
    // topo/add (then login) for those, login for the others.
    std::vector<north::Message> reconcile(const north::SessionInfo& s, const Json& list, bool login_present,
                                          std::uint32_t& next_id, std::vector<std::string>* added) const {
        std::vector<north::Message> out;
        for (auto index : s.devices) {
            const auto& d = s.device(index);
            if (&d == s.identity) continue;
            bool present = false;
            for (const auto& e : list.is_array() ? list : Json::array()) {
                if (e.is_object() && text_of(e, "productID") == product_of(d) && text_of(e, "deviceName") == d.name)
                    present = true;
            }
            if (present) {
                if (login_present) out.push_back(login(s, index, next_id));
            } else if (auto add = topo_add(s, index, next_id)) {
                out.push_back(std::move(*add));
                if (added) added->push_back(d.name);
            }
        }
        return out;
    }

    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t& next_id) const override {
        std::vector<north::Packet> out;
        const auto limit = max_payload();
        const std::string longest_id = std::to_string(north::kLongestMessageId);
        while (!pending.empty() && out.size() < max_packets) {
            // OneNET's counts first (10 devices, 100 values per point), then bytes: the value
            // budget (at first what the limit could hold) shrinks in proportion to the overshoot
            // until the message fits.
            std::size_t budget = max_payload() / 16;       // no value takes fewer than 16 bytes here
            const std::string id = next_id_text(next_id);  // unused (skipped) when a set is split
            Groups groups;
            north::Message m;
            for (;;) {
                groups = group_oldest(s, pending, budget);
                m = render(s, pending, groups, id);
                std::size_t batches = 0, values = 0;
                for (const auto& g : groups) {
                    batches += g.second.size();
                    for (auto k : g.second) values += pending[k].values.size();
                }
                if (m.payload.size() <= limit || batches == 1) break;
                budget = std::max<std::size_t>(1, std::min(values - 1, values * limit / m.payload.size()));
            }
            std::vector<std::size_t> taken;
            for (const auto& g : groups) taken.insert(taken.end(), g.second.begin(), g.second.end());
            std::sort(taken.begin(), taken.end());
            north::Packet p;
            if (m.payload.size() <= limit) {
                north::take_at(pending, taken, p);
                m.samples = p.samples;
                p.messages.push_back(std::move(m));
            } else {  // one sample set larger than a message: its values over several
                std::deque<core::SampleBatch> one(1);
                const Groups single{{groups[0].first, {0}}};
                const auto sized = [&](const core::SampleBatch& part) {
                    one.front() = part;
                    return render(s, one, single, longest_id).payload;
                };
                for (const auto& part : north::split_values(pending[taken[0]], limit, sized)) {
                    one.front() = part;
                    auto msg = render(s, one, single, next_id_text(next_id));
                    msg.samples = part.values.size();
                    p.messages.push_back(std::move(msg));
                }
                north::take_at(pending, taken, p);
            }
            out.push_back(std::move(p));
        }
        return out;
    }

    // One message for the grouped batches: property/post (a direct device's set of properties),
    // event/post (its set of events only), pack/post (a set with both, the device itself; or one
    // set per device of a gateway), history/post (several sets of a device).
    north::Message render(const north::SessionInfo& s, const std::deque<core::SampleBatch>& pending,
                          const Groups& groups, const std::string& id) const {
        const bool single =
            std::all_of(groups.begin(), groups.end(), [](const auto& g) { return g.second.size() == 1; });
        north::Message m;
        m.answer_id = id;  // finished by the platform's /reply, not by PUBACK
        m.payload = R"({"id":")" + id + R"(","version":"1.0","params":)";
        const core::SampleBatch* direct = !s.identity->gateway && single ? &pending[groups[0].second[0]] : nullptr;
        const auto direct_events = direct ? events_of(*s.identity, *direct) : EventValues{};
        if (direct && direct_events.empty()) {
            m.topic = prefix(s) + "thing/property/post";
            m.payload += properties(*s.identity, *direct);
        } else if (direct && !has_properties(*s.identity, *direct)) {
            m.topic = prefix(s) + "thing/event/post";
            m.payload += events(*s.identity, *direct, direct_events);
        } else {
            m.topic = prefix(s) + (single ? "thing/pack/post" : "thing/history/post");
            m.payload += '[';
            for (std::size_t i = 0; i < groups.size(); ++i) {
                const auto& d = s.device(groups[i].first);
                if (i) m.payload += ',';
                m.payload += '{';
                if (&d != s.identity) m.payload += R"("identity":)" + identity(d) + ",";
                if (single) {
                    m.payload += properties_and_events(d, pending[groups[i].second[0]]);
                } else {
                    std::vector<const core::SampleBatch*> batches;
                    for (auto k : groups[i].second) batches.push_back(&pending[k]);
                    m.payload += history(d, batches);
                }
                m.payload += '}';
            }
            m.payload += ']';
        }
        m.payload += '}';
        return m;
    }

    // The platform answering one of our requests. The topology it keeps (sub/topo/get): what is
    // missing is added, what is there logged in, and the sync result reported as the protocol asks.
    north::Answer answer(const north::SessionInfo& s, const Json& j, const std::string& id, const std::string& suffix,
                         std::uint32_t& next_id) const {
        north::Answer a = make_answer(id, j, thing_model_outcome(int_of(j, "code")), "code", "msg");
        if (a.outcome == north::Answer::Outcome::accepted && suffix == "sub/topo/get/reply") {
            a.follow_ups.emplace_back(prefix(s) + "thing/sub/topo/get/result", onenet_reply(id, kCodeOk, "success"), 0);
            auto rest = reconcile(s, j.contains("data") ? j["data"] : Json(), true, next_id, nullptr);
            for (auto& m : rest) a.follow_ups.push_back(std::move(m));
        }
        return a;
    }

    // subList is the whole topology after the change: configured sub-devices it lacks are added
    // again (the configuration says they belong to this gateway).
    north::Inbound topo_change(const north::SessionInfo& s, const Json& j, const std::string& id,
                               const std::string& answer_topic, std::uint32_t& next_id, north::Inbound in) const {
        const Json* params = j.contains("params") ? &j["params"] : nullptr;
        const Json list = params && params->is_object() && params->contains("subList") ? (*params)["subList"] : Json();
        if (!list.is_array()) {
            in.malformed = true;
            in.problem = "topo/change without a subList array";
            in.replies.emplace_back(answer_topic, onenet_reply(id, kCodeFailed, in.problem), 0);
            return in;
        }
        in.replies.emplace_back(answer_topic, onenet_reply(id, kCodeOk, "success"), 0);
        std::vector<std::string> added;
        for (auto& m : reconcile(s, list, false, next_id, &added)) in.replies.push_back(std::move(m));
        if (!added.empty()) {
            in.problem = fmt::format(
                "the platform's topology no longer lists sub-device(s) {}; added again as "
                "configured",
                fmt::join(added, ", "));
        }
        return in;
    }

    north::Inbound on_message(const north::SessionInfo& s, const std::string& topic, const std::string& payload,
                              const north::LatestValues& latest, std::uint32_t& next_id) const override {
        north::Inbound in;
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
            in.answer = answer(s, *j, *id, suffix, next_id);
            return in;
        }
        const std::string answer_topic = p + suffix + "_reply";
        // (on any device's session: refused there unless the cloud has diagnostics: true)
        if (suffix == std::string("service/") + kDiagnosticsService + "/invoke") {
            in.kind = "diagnostics";
            const auto params = j->find("params");
            in.diagnostics = diag_request_of(params != j->end() ? *params : Json());
            in.diagnostics->id = *id;
            in.diagnostics->reply_topic = answer_topic;
            return in;
        }
        if (s.channel && suffix == std::string("service/") + kConfigService + "/invoke") {
            in.kind = "configuration";
            const auto params = j->find("params");
            in.config_push = config_push_of(params != j->end() ? *params : Json());
            in.config_push->id = *id;
            in.config_push->reply_topic = answer_topic;
            return in;
        }
        in.command = true;
        if (suffix == "property/get" || suffix == "sub/property/get") {
            return property_get(s, *j, *id, suffix == "sub/property/get", answer_topic, latest, std::move(in));
        }
        if (suffix == "sub/topo/change") return topo_change(s, *j, *id, answer_topic, next_id, std::move(in));
        if (suffix == "property/set" || suffix == "sub/property/set" || suffix == "sub/service/invoke" ||
            (suffix.rfind("service/", 0) == 0 && ends_with(suffix, "/invoke"))) {
            return write_request(s, *j, *id, suffix, answer_topic, std::move(in));
        }
        in.command = false;
        in.kind = "unexpected";
        in.problem = "message on a topic this platform does not use";
        return in;
    }

    // Success carries what was read back: services as their output (`data`, nested for
    // sub-devices); property set replies have no data.
    north::Message command_reply(const north::SessionInfo& s, const north::Command& c,
                                 const north::CommandResult& r) const override {
        if (!r.ok) return {c.reply_topic, onenet_reply(c.id, kCodeFailed, r.reason.substr(0, 500)), 0};
        if (ends_with(c.kind, "property/set")) return {c.reply_topic, onenet_reply(c.id, kCodeOk, "success"), 0};
        std::string output;
        if (!r.values.empty()) output = point_values_json(s.device(c.device), r.values);
        if (c.kind == "sub/service/invoke") {
            const auto& d = s.device(c.device);
            std::string data = identity(d);
            data.pop_back();
            data += R"(,"identifier":)";
            append_json_string(data, c.detail);
            data += R"(,"output":)" + (output.empty() ? std::string("{}") : output) + "}";
            return {c.reply_topic, onenet_reply(c.id, kCodeOk, "success", data), 0};
        }
        return {c.reply_topic, onenet_reply(c.id, kCodeOk, "success", output), 0};
    }

    // The service's invoke_reply with the first report (200 once checked and written, or the
    // refusal with its first error), and each report as the event fieldlink_config of the device
    // the session logs in as (the product's thing model must define both).
    std::vector<north::Message> config_report(const north::SessionInfo& s, const north::ConfigReport& r,
                                              std::uint32_t& next_id) const override {
        std::vector<north::Message> out;
        const Json report = config_report_json(r, "");
        if (!r.reply_topic.empty()) {
            const bool ok = r.result == "verifying" || r.result == "unchanged" || r.result == "applied";
            const std::string msg =
                ok ? "accepted: " + r.result
                   : r.result + ": " + r.error.substr(0, std::min<std::size_t>(r.error.find('\n'), 500));
            out.emplace_back(r.reply_topic, onenet_reply(r.id, ok ? kCodeOk : kCodeFailed, msg, dump(report)), 0);
        }
        const std::string id = next_id_text(next_id);
        const Json event = {
            {"id", id}, {"version", "1.0"}, {"params", {{kConfigService, {{"value", report}, {"time", r.at_ms}}}}}};
        out.emplace_back(prefix(s) + "thing/event/post", dump(event), 0, id);
        return out;
    }

    // invoke_reply: 200 with the result as data, or 100 with why not.
    north::Message diagnostics_reply(const north::SessionInfo&, const north::DiagRequest& q, bool ok,
                                     const std::string& result) const override {
        if (ok) return {q.reply_topic, onenet_reply(q.id, kCodeOk, "success", result), 0};
        return {q.reply_topic, onenet_reply(q.id, kCodeFailed, result.substr(0, 500)), 0};
    }

  private:
    // property/set and service invoke, direct or for a sub-device: checked here, written by the
    // device's bus worker, answered by command_reply. A service whose identifier is a command
    // name of one of the device's points writes that command; any other service writes its input
    // parameters as points.
    north::Inbound write_request(const north::SessionInfo& s, const Json& j, const std::string& id,
                                 const std::string& suffix, const std::string& answer_topic, north::Inbound in) const {
        const bool sub = suffix.rfind("sub/", 0) == 0;
        const bool service = suffix.find("service/") != std::string::npos;
        const Json* params = j.contains("params") ? &j["params"] : nullptr;
        const config::DeviceConfig* target = s.identity;
        std::string identifier;
        if (service && !sub) identifier = suffix.substr(8, suffix.size() - 8 - 7);  // service/{id}/invoke
        if (sub) {
            target = params && params->is_object()
                         ? sub_device(s, text_of(*params, "productID"), text_of(*params, "deviceName"))
                         : nullptr;
            if (params && params->is_object()) identifier = text_of(*params, "identifier");
            const char* inner = service ? "input" : "params";
            params = params && params->is_object() && params->contains(inner) ? &(*params)[inner] : nullptr;
        }
        north::Command c;
        c.kind = suffix;
        c.id = id;
        c.reply_topic = answer_topic;
        c.detail = identifier;
        c.sets_state = !service;  // a property set is a state; a service invocation is an action
        std::string why;
        bool ok = false;
        if (!target) {
            why = "unknown sub-device (expected productID and deviceName of a sub-device of this gateway)";
        } else if (const auto* p = service ? config::point_with_command(*target, identifier) : nullptr) {
            auto v = config::accept_write(*p, identifier, &why);
            if (v) c.values.push_back({static_cast<std::uint32_t>(p - target->points.data()), std::move(*v)});
            ok = v.has_value();
        } else if (!params) {
            why = "no parameters to write";
        } else {
            ok = writes_of(*target, *params, c.values, &why);
        }
        in.malformed = !ok && (!target || !params);
        return write_or_refuse(s, std::move(in), std::move(c), target, ok, suffix, why);
    }

    const config::DeviceConfig* sub_device(const north::SessionInfo& s, const std::string& product,
                                           const std::string& name) const {
        for (auto index : s.devices) {
            const auto& d = s.device(index);
            if (&d != s.identity && d.name == name && product_of(d) == product) return &d;
        }
        return nullptr;
    }

    // {"productID":"..","deviceName":".."}
    std::string identity(const config::DeviceConfig& d) const {
        std::string out = R"({"productID":)";
        append_json_string(out, product_of(d));
        out += R"(,"deviceName":)";
        append_json_string(out, d.name);
        return out + "}";
    }

    // The oldest waiting batches grouped by device, within OneNET's limits: the first devices in
    // queue order (a direct device: itself; a gateway: at most 10), up to 100 batches each, and
    // the value budget. Batches of other devices are skipped, not a reason to stop: sub-devices
    // polled in turn interleave, and a message must still carry 100 batches of each of its 10.
    static Groups group_oldest(const north::SessionInfo& s, const std::deque<core::SampleBatch>& pending,
                               std::size_t max_values) {
        Groups groups;
        const std::size_t max_devices = s.identity->gateway ? kMaxPackDevices : 1;
        std::size_t values = 0, full = 0;
        for (std::size_t i = 0; i < pending.size() && !(groups.size() == max_devices && full == max_devices); ++i) {
            const auto& b = pending[i];
            auto g =
                std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == b.device_index; });
            if (g == groups.end()) {
                if (groups.size() == max_devices) continue;
                groups.push_back({b.device_index, {}});
                g = groups.end() - 1;
            } else if (g->second.size() == kMaxBatchesPerDevice) {
                continue;
            }
            if (values > 0 && values + b.values.size() > max_values) break;
            values += b.values.size();
            g->second.push_back(i);
            if (g->second.size() == kMaxBatchesPerDevice) ++full;
        }
        return groups;
    }

    north::Inbound property_get(const north::SessionInfo& s, const Json& j, const std::string& id, bool sub,
                                const std::string& answer_topic, const north::LatestValues& latest,
                                north::Inbound in) const {
        const Json* params = j.contains("params") ? &j["params"] : nullptr;
        const config::DeviceConfig* target = s.identity;
        if (sub && params && params->is_object()) {
            // A sub-device is its product id and device name together (names repeat across products).
            target = sub_device(s, text_of(*params, "productID"), text_of(*params, "deviceName"));
            params = params->contains("params") ? &(*params)["params"] : nullptr;
        }
        if (!target || !params || !params->is_array()) {
            in.refused = true;
            in.problem =
                target ? "property get without a list of identifiers" : "property get for an unknown sub-device";
            in.replies.emplace_back(answer_topic, onenet_reply(id, kCodeFailed, in.problem), 0);
            return in;
        }
        const auto index = static_cast<std::uint32_t>(target - s.cfg->devices.data());
        auto values = latest.find(index);
        std::string data = "{";
        for (const auto& want : *params) {
            const std::string name = want.is_string() ? want.get<std::string>() : std::string();
            auto p = std::find_if(target->points.begin(), target->points.end(),
                                  [&](const auto& pt) { return pt.name == name; });
            const auto pi = static_cast<std::size_t>(p - target->points.begin());
            if (p == target->points.end() || values == latest.end() || !values->second[pi]) {
                in.refused = true;
                in.problem = "property get: unknown or not yet read identifier '" + name + "'";
                in.replies.emplace_back(answer_topic, onenet_reply(id, kCodeFailed, in.problem), 0);
                return in;
            }
            if (data.size() > 1) data += ',';
            append_json_string(data, name);
            data += ':';
            append_json_value(data, *values->second[pi]);
        }
        in.replies.emplace_back(answer_topic, onenet_reply(id, kCodeOk, "success", data + "}"), 0);
        return in;
    }
};

}  // namespace

std::unique_ptr<north::Profile> make_onenet_thing_model(const config::CloudConfig& c) {
    return std::make_unique<OnenetThingModel>(c);
}

}  // namespace fieldlink::platforms
