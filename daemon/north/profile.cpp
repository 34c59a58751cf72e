#include "profile.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>

#include "core/credentials.hpp"

namespace fieldlink::north {
namespace {

// A JSON string literal; invalid UTF-8 from a device becomes U+FFFD instead of an exception.
void append_json_string(std::string& out, const std::string& s) {
    out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

constexpr std::size_t kMaxBatchesPerMessage = 100;  // keeps a message far below OneNET's 256 KB

struct ValueWriter {
    std::string& out;
    void operator()(bool b) const { out += b ? "true" : "false"; }
    void operator()(std::int64_t i) const { fmt::format_to(std::back_inserter(out), "{}", i); }
    void operator()(std::uint64_t u) const { fmt::format_to(std::back_inserter(out), "{}", u); }
    void operator()(double d) const {
        if (!std::isfinite(d)) out += "null";  // JSON has no NaN/Inf
        // 15 significant digits: exact for every decoded integer and float32, and it hides the
        // binary noise of scaling (101 * 0.1 prints as 10.1, not 10.100000000000001).
        else fmt::format_to(std::back_inserter(out), "{:.15g}", d);
    }
    void operator()(const std::string& s) const { append_json_string(out, s); }
};

class OnenetDatapoints : public Profile {
public:
    explicit OnenetDatapoints(const core::CloudConfig& c) : cloud_(c) {}

    std::optional<Credentials> credentials(const core::DeviceConfig& d, std::int64_t now_s,
                                           std::string* error) const override {
        core::TokenRequest t;
        t.res = core::onenet_device_res(cloud_.product_id, d.name);
        t.expiry = cloud_.token_expiry ? cloud_.token_expiry : now_s + cloud_.token_ttl.count() / 1000;
        t.method = cloud_.token_method;
        t.key_base64 = d.key.empty() ? cloud_.product_key : d.key;
        auto token = core::onenet_token(t, error);
        if (!token) return std::nullopt;
        return Credentials{d.name, cloud_.product_id, *token};
    }

    std::vector<Message> build(const core::DeviceConfig& d, std::deque<core::SampleBatch>& pending,
                               std::size_t max_messages, std::uint32_t& next_id) const override {
        std::vector<Message> out;
        while (!pending.empty() && out.size() < max_messages) {
            const std::size_t n = std::min(pending.size(), kMaxBatchesPerMessage);
            Message m;
            m.topic = "$sys/" + cloud_.product_id + "/" + d.name + "/dp/post/json";
            const std::uint32_t id = next_id;
            next_id = next_id >= 0x7FFFFFFFu ? 1 : next_id + 1;
            m.payload = onenet_dp_payload(d, pending, n, id);
            for (std::size_t i = 0; i < n; ++i) {
                m.samples += pending.front().values.size();
                pending.pop_front();
            }
            out.push_back(std::move(m));
        }
        return out;
    }

private:
    const core::CloudConfig& cloud_;
};

class MqttTemplate : public Profile {
public:
    explicit MqttTemplate(const core::CloudConfig& c)
        : cloud_(c), per_point_(c.topic.find("{point}") != std::string::npos) {}

    std::optional<Credentials> credentials(const core::DeviceConfig& d, std::int64_t, std::string*) const override {
        core::SampleBatch empty;
        return Credentials{expand_template(cloud_.client_id, d, empty, nullptr), cloud_.username, cloud_.password};
    }

    std::vector<Message> build(const core::DeviceConfig& d, std::deque<core::SampleBatch>& pending,
                               std::size_t max_messages, std::uint32_t&) const override {
        std::vector<Message> out;
        while (!pending.empty() && out.size() < max_messages) {
            const auto& b = pending.front();
            if (per_point_) {
                for (const auto& pv : b.values) {
                    out.push_back({expand_template(cloud_.topic, d, b, &pv), expand_template(cloud_.payload, d, b, &pv), 1});
                }
            } else {
                out.push_back({expand_template(cloud_.topic, d, b, nullptr), expand_template(cloud_.payload, d, b, nullptr),
                               b.values.size()});
            }
            pending.pop_front();
        }
        return out;
    }

    int qos() const override { return cloud_.qos; }

private:
    const core::CloudConfig& cloud_;
    bool per_point_;
};

}  // namespace

void append_json_value(std::string& out, const core::Value& v) { std::visit(ValueWriter{out}, v); }

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

std::string expand_template(const std::string& tmpl, const core::DeviceConfig& d, const core::SampleBatch& b,
                            const core::PointValue* point) {
    std::string out;
    out.reserve(tmpl.size() + 64);
    for (std::size_t i = 0; i < tmpl.size();) {
        if (tmpl[i] != '{') {
            out += tmpl[i++];
            continue;
        }
        // A variable is {name} with name in [a-z_]; any other brace is literal (JSON templates).
        std::size_t close = i + 1;
        while (close < tmpl.size() && (std::islower(static_cast<unsigned char>(tmpl[close])) || tmpl[close] == '_')) ++close;
        if (close >= tmpl.size() || tmpl[close] != '}' || close == i + 1) {
            out += tmpl[i++];
            continue;
        }
        const std::string var = tmpl.substr(i + 1, close - i - 1);
        if (var == "device") out += d.name;
        else if (var == "ts_ms") out += std::to_string(b.timestamp_ms);
        else if (var == "ts") out += std::to_string(b.timestamp_ms / 1000);
        else if (var == "point" && point) out += d.points[point->point_index].name;
        else if (var == "value" && point) append_json_value(out, point->value);
        else if (var == "values") {
            out += '{';
            for (std::size_t k = 0; k < b.values.size(); ++k) {
                if (k) out += ',';
                append_json_string(out, d.points[b.values[k].point_index].name);
                out += ':';
                append_json_value(out, b.values[k].value);
            }
            out += '}';
        } else {
            out += tmpl.substr(i, close - i + 1);  // unknown variable: kept as written
        }
        i = close + 1;
    }
    return out;
}

std::string legacy_dp_type3(const std::string& json) {
    std::string out;
    out += static_cast<char>(3);
    out += static_cast<char>((json.size() >> 8) & 0xFF);
    out += static_cast<char>(json.size() & 0xFF);
    out += json;
    return out;
}

std::unique_ptr<Profile> make_profile(const core::CloudConfig& cloud) {
    switch (cloud.platform) {
        case core::Platform::onenet: return std::make_unique<OnenetDatapoints>(cloud);
        case core::Platform::mqtt: return std::make_unique<MqttTemplate>(cloud);
        default: return nullptr;
    }
}

}  // namespace fieldlink::north
