// OneNET datapoints ("MQTT IoT kit", protocols.md §2.7): $sys/{pid}/{dev}/dp/post/json with
// arrays of {v,t} per datastream; commands on cmd/request/{cmdid}, answered on cmd/response.
#include <fmt/format.h>

#include "platforms/json.hpp"
#include "platforms/onenet.hpp"

namespace fieldlink::platforms {
namespace {

// protocols.md §2.7: err_code 98 illegal data and 99 size are the message's own fault; 100 is
// the platform's internal error. A rejection without a known code is retried a few times.
north::Answer::Outcome datapoints_outcome(std::optional<long long> err_code) {
    using O = north::Answer::Outcome;
    if (err_code == 98 || err_code == 99) return O::permanent;
    if (err_code == 100) return O::transient;
    return O::unknown;
}

class OnenetDatapoints : public OnenetProfile {
  public:
    using OnenetProfile::OnenetProfile;

    std::vector<std::string> subscriptions(const north::SessionInfo& s) const override {
        return {prefix(s) + "dp/post/json/+", prefix(s) + "cmd/request/+"};
    }

    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t& next_id) const override {
        std::vector<north::Packet> out;
        const std::string topic = prefix(s) + "dp/post/json";
        const auto limit = max_payload();
        while (!pending.empty() && out.size() < max_packets) {
            const std::size_t most = pending.size();  // bytes are the limit, not a count
            const std::uint32_t id = north::take_message_id(next_id);
            std::string payload;
            std::vector<std::pair<std::size_t, std::size_t>> superseded;  // batches tried -> values left out
            const std::size_t n = north::fit_batches(
                most, limit,
                [&](std::size_t k) {
                    std::size_t left_out = 0;
                    std::string text = onenet_dp_payload(*s.identity, pending, k, id, &left_out);
                    superseded.emplace_back(k, left_out);
                    return text;
                },
                payload);
            north::Packet p;
            if (payload.size() <= limit) {
                for (const auto& [k, left_out] : superseded) {
                    if (k == n) p.superseded = left_out;
                }
                north::Message m{topic, std::move(payload), 0, std::to_string(id)};
                for (std::size_t i = 0; i < n; ++i) north::take_front(pending, p);
                m.samples = p.samples - p.superseded;
                p.messages.push_back(std::move(m));
            } else {  // one sample set larger than a message: its values over several
                std::deque<core::SampleBatch> one(1);
                const auto render = [&](const core::SampleBatch& part) {
                    one.front() = part;
                    return onenet_dp_payload(*s.identity, one, 1, north::kLongestMessageId);
                };
                for (const auto& part : north::split_values(pending.front(), limit, render)) {
                    one.front() = part;
                    const std::uint32_t part_id = north::take_message_id(next_id);
                    p.messages.emplace_back(topic, onenet_dp_payload(*s.identity, one, 1, part_id), part.values.size(),
                                            std::to_string(part_id));
                }
                north::take_front(pending, p);
            }
            out.push_back(std::move(p));
        }
        return out;
    }

    // The response is application-defined and under 1 KB: {"id","code","msg"} and the values read
    // back as data when they fit.
    north::Message command_reply(const north::SessionInfo& s, const north::Command& c,
                                 const north::CommandResult& r) const override {
        if (!r.ok) return {c.reply_topic, onenet_reply(c.id, kCodeFailed, r.reason.substr(0, 400)), 0};
        std::string reply = onenet_reply(c.id, kCodeOk, "success", point_values_json(s.device(c.device), r.values));
        if (reply.size() >= 1024) reply = onenet_reply(c.id, kCodeOk, "success");
        return {c.reply_topic, reply, 0};
    }

    north::Inbound on_message(const north::SessionInfo& s, const std::string& topic, const std::string& payload,
                              const north::LatestValues&, std::uint32_t&) const override {
        north::Inbound in;
        const std::string p = prefix(s);
        if (topic == p + "dp/post/json/accepted" || topic == p + "dp/post/json/rejected") {
            const bool accepted = topic == p + "dp/post/json/accepted";
            in.kind = accepted ? "dp/post/json/accepted" : "dp/post/json/rejected";
            auto j = parse_object(payload);
            const auto id = j ? int_of(*j, "id") : std::nullopt;
            if (!id || *id <= 0) {  // -1: the platform could not read our id; nothing to match
                in.malformed = true;
                in.problem =
                    "datapoints answer without a message id (expected {\"id\":N,...}): " + payload.substr(0, 120);
                return in;
            }
            const auto outcome =
                accepted ? north::Answer::Outcome::accepted : datapoints_outcome(int_of(*j, "err_code"));
            in.answer = make_answer(std::to_string(*id), *j, outcome, "err_code", "err_msg");
        } else if (topic.rfind(p + "cmd/request/", 0) == 0 && topic.size() > (p + "cmd/request/").size()) {
            // Command payloads are application-defined: a command name ("on"), point=value, or a
            // JSON object of points; answered on the response topic with the same id.
            in.kind = "cmd/request";
            in.command = true;
            const std::string cmdid = topic.substr((p + "cmd/request/").size());
            north::Command c;
            c.kind = in.kind;
            c.id = cmdid;
            c.reply_topic = p + "cmd/response/" + cmdid;
            std::string why, ignored;
            const bool ok =
                plain_command(*s.identity, payload, c.values, &ignored, &why, &c.requested_ms, &c.sets_state);
            return write_or_refuse(s, std::move(in), std::move(c), s.identity, ok, "command", why);
        } else {
            in.kind = "unexpected";
            in.problem = "message on a topic this platform does not use";
        }
        return in;
    }
};

}  // namespace

std::string onenet_dp_payload(const config::DeviceConfig& d, const std::deque<core::SampleBatch>& batches,
                              std::size_t count, std::uint32_t id, std::size_t* superseded) {
    // Group samples by datastream, keeping acquisition order: {"id":N,"dp":{name:[{"v":..,"t":..}]}}.
    // `t` has whole seconds and the platform keeps one value per stream and second: of several
    // values of a stream in the same second, the newest goes and the others are counted.
    struct Stream {
        std::string json;
        std::size_t last_start = 0;  // where its last entry begins in `json`
        std::int64_t last_ms = -1;   // that entry's acquisition time
    };
    std::vector<Stream> streams(d.points.size());
    std::size_t dropped = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const auto& b = batches[i];
        const std::int64_t t = b.timestamp_ms / 1000;
        for (const auto& pv : b.values) {
            Stream& st = streams[pv.point_index];
            if (st.last_ms >= 0 && st.last_ms / 1000 == t) {
                ++dropped;
                if (b.timestamp_ms < st.last_ms) continue;  // an older value of that second
                st.json.resize(st.last_start);              // the newer one replaces it
            }
            st.last_start = st.json.size();
            st.last_ms = b.timestamp_ms;
            st.json += st.json.empty() ? "[" : ",";
            st.json += "{\"v\":";
            append_json_value(st.json, pv.value);
            fmt::format_to(std::back_inserter(st.json), ",\"t\":{}}}", t);
        }
    }
    if (superseded) *superseded = dropped;
    std::string out = fmt::format(R"({{"id":{},"dp":{{)", id);
    bool first = true;
    for (std::size_t p = 0; p < streams.size(); ++p) {
        if (streams[p].json.empty()) continue;
        if (!first) out += ',';
        first = false;
        append_json_string(out, d.points[p].name);
        out += ':';
        out += streams[p].json;
        out += ']';
    }
    out += "}}";
    return out;
}

std::unique_ptr<north::Profile> make_onenet_datapoints(const config::CloudConfig& c) {
    return std::make_unique<OnenetDatapoints>(c);
}

}  // namespace fieldlink::platforms
