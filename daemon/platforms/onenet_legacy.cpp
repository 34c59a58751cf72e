// OneNET legacy "multi-protocol" MQTT (protocols.md §3): clientId = numeric device id, username =
// product id, password = the device's auth_info (or an API key). Uplink on $dp: type 3
// ({"stream":value}, stamped on arrival) for one waiting sample set, type 1 (datastreams with
// "at" times) when a backlog waits, so every value keeps its acquisition time. Commands arrive on
// $creq/{uuid} without subscribing and are answered on $crsp/{uuid}.
#include <fmt/format.h>

#include <cassert>
#include <ctime>

#include <algorithm>

#include "platforms/json.hpp"
#include "platforms/onenet_legacy.hpp"
#include "platforms/platform.hpp"

namespace fieldlink::platforms {
namespace {

constexpr std::size_t kMaxBody = 65535;  // the frame's 2-byte big-endian body length

// The legacy platform reads "at" as its local time, China Standard Time (UTC+8).
std::string platform_time(std::int64_t ms) {
    const std::time_t t = static_cast<std::time_t>(ms / 1000) + std::time_t{8} * 3600;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

// Type 3 body {"name":value,...} packed up to a size; flush() moves it into a $dp message.
class Type3 {
  public:
    explicit Type3(std::size_t max) : max_(max) {}
    bool fits(const std::string& entry) const { return json_.size() + 1 + entry.size() + 1 <= max_ || count_ == 0; }
    void add(const std::string& entry) {
        json_ += count_++ ? ',' : '{';
        json_ += entry;
    }
    void flush(north::Packet& p) {
        if (count_ == 0) return;
        north::Message m{"$dp", onenet_legacy_frame(3, json_ + "}"), count_};
        p.messages.push_back(std::move(m));
        json_.clear();
        count_ = 0;
    }

  private:
    std::size_t max_;
    std::string json_;
    std::size_t count_ = 0;
};

// Type 1 body {"datastreams":[{"id":name,"datapoints":[...]},...]} packed up to a size, its
// length known before it is written.
class Type1 {
  public:
    Type1(const config::DeviceConfig& d, std::size_t max)
        : d_(d), max_(max), streams_(d.points.size()), last_(d.points.size()) {}
    // Bytes `f` adds to stream k: a comma, or (a stream's first value) {"id":NAME,"datapoints":[F]}
    // with a comma before every stream but the first (`others`: streams already in the body).
    std::size_t cost(std::uint32_t k, const std::string& f, bool others) const {
        if (!streams_[k].empty()) return 1 + f.size();
        return (others ? 1 : 0) + 6 + name_size(k) + 15 + f.size() + 2;
    }
    bool fits(std::uint32_t k, const std::string& f) const {
        return values_ == 0 || size_ + cost(k, f, used_ > 0) <= max_;
    }
    // Whether a whole set fits (its values name distinct points, so each new stream counts once).
    bool fits(const std::vector<std::pair<std::uint32_t, std::string>>& frags) const {
        std::size_t extra = 0;
        bool others = used_ > 0;
        for (const auto& [k, f] : frags) {
            extra += cost(k, f, others);
            others = true;
        }
        return size_ + extra <= max_;
    }
    void add(std::uint32_t k, const std::string& f, std::int64_t ms) {
        size_ += cost(k, f, used_ > 0);
        if (streams_[k].empty()) ++used_;
        streams_[k] += streams_[k].empty() ? "" : ",";
        last_[k] = {streams_[k].size(), ms};
        streams_[k] += f;
        ++values_;
    }
    // `at` has whole seconds and the platform keeps one value per stream and second: of values of
    // stream k in the same second, the newest stays. Returns false when the value at `ms` is not
    // of a second stream k already has in this body (add it); true when it was taken care of: it
    // replaced an older one, or an existing newer one stays. Either way one value was left out.
    // (A newer value that would not fit the full body goes as a new value, into the next message.)
    bool same_second(std::uint32_t k, const std::string& f, std::int64_t ms) {
        auto& [start, last_ms] = last_[k];
        if (streams_[k].empty() || last_ms / 1000 != ms / 1000) return false;
        const std::size_t replaced = size_ - (streams_[k].size() - start) + f.size();
        if (ms >= last_ms && replaced > max_) return false;  // the body is full: the newer one goes in the next
        if (ms >= last_ms) {
            size_ = replaced;
            streams_[k].replace(start, std::string::npos, f);
            last_ms = ms;
        }
        return true;
    }
    void flush(north::Packet& p) {
        if (values_ == 0) return;
        std::string json = R"({"datastreams":[)";
        bool first = true;
        for (std::size_t k = 0; k < streams_.size(); ++k) {
            if (streams_[k].empty()) continue;
            json += first ? "" : ",";
            first = false;
            json += R"({"id":)";
            append_json_string(json, d_.points[k].name);
            json += R"(,"datapoints":[)" + streams_[k] + "]}";
            streams_[k].clear();
        }
        json += "]}";
        p.messages.emplace_back("$dp", onenet_legacy_frame(1, json), values_);
        size_ = kEmpty;
        used_ = values_ = 0;
    }

  private:
    static constexpr std::size_t kEmpty = 18;  // {"datastreams":[]}
    std::size_t name_size(std::uint32_t k) const {
        std::string n;
        append_json_string(n, d_.points[k].name);
        return n.size();
    }
    const config::DeviceConfig& d_;
    std::size_t max_;
    std::vector<std::string> streams_;
    std::vector<std::pair<std::size_t, std::int64_t>> last_;  // per stream: where its last value starts, its time
    std::size_t size_ = kEmpty;
    std::size_t used_ = 0;    // streams with values
    std::size_t values_ = 0;  // values in the body
};

class OnenetLegacy : public north::Profile {
  public:
    using north::Profile::Profile;
    // OneNET's rule for every device login: at most 3 in 5 s, else kicked.
    north::LoginLimit login_limit() const override { return {3, std::chrono::milliseconds(5000)}; }
    const char* credentials_hint() const override { return "the product id, device name, key and token method"; }

    std::optional<north::Credentials> credentials(const north::SessionInfo& s, std::int64_t,
                                                  std::string*) const override {
        return north::Credentials{s.identity->device_id, cloud_.product_id,
                                  s.identity->key.empty() ? cloud_.password : s.identity->key, 0, std::nullopt};
    }

    // Messages are packed up to the frame's 2-byte length (65,535 bytes of body), in bytes: a
    // backlog takes as many whole sample sets as fit; a set larger than one frame on its own is
    // split over several messages of one packet (its record finishes when all are acknowledged).
    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t&) const override {
        std::vector<north::Packet> out;
        const auto& d = *s.identity;
        while (!pending.empty() && out.size() < max_packets) {
            north::Packet p;
            if (pending.size() == 1) {
                Type3 body(body_limit());
                for (const auto& pv : pending.front().values) {
                    std::string entry;
                    append_json_string(entry, d.points[pv.point_index].name);
                    entry += ':';
                    append_json_value(entry, pv.value);
                    if (!body.fits(entry)) body.flush(p);
                    body.add(entry);
                }
                body.flush(p);
                north::take_front(pending, p);
            } else {
                const std::size_t n = backlog(d, pending, p);
                for (std::size_t i = 0; i < n; ++i) north::take_front(pending, p);
            }
            out.push_back(std::move(p));
        }
        return out;
    }

    // Type 1 messages for the oldest waiting sets (as many whole sets as fit a frame; a set larger
    // than a frame spans several), one value per stream and second; returns the sets taken.
    std::size_t backlog(const config::DeviceConfig& d, const std::deque<core::SampleBatch>& pending,
                        north::Packet& p) const {
        Type1 body(d, body_limit());
        std::size_t n = 0;
        std::vector<std::pair<std::uint32_t, std::string>> frags;
        for (const auto& b : pending) {
            frags.clear();
            const std::string at = platform_time(b.timestamp_ms);
            for (const auto& pv : b.values) {
                std::string f = R"({"at":")" + at + R"(","value":)";
                append_json_value(f, pv.value);
                f += '}';
                frags.emplace_back(pv.point_index, std::move(f));
            }
            if (n > 0 && !body.fits(frags)) break;  // the next set goes whole, in the next message
            for (auto& [k, f] : frags) {
                if (body.same_second(k, f, b.timestamp_ms)) {
                    ++p.superseded;
                    continue;
                }
                if (!body.fits(k, f)) body.flush(p);  // only inside a set larger than a frame
                body.add(k, f, b.timestamp_ms);
            }
            ++n;
        }
        body.flush(p);
        return n;
    }

    std::size_t body_limit() const {
        return static_cast<std::size_t>(std::min<std::uint64_t>(kMaxBody, max_payload() - 3));
    }

    // $crsp carries {"code":0,"msg":"success","data":{values read back}} or code 1 and the reason
    // (the payload is application-defined; the uuid of the request topic is echoed).
    north::Message command_reply(const north::SessionInfo& s, const north::Command& c,
                                 const north::CommandResult& r) const override {
        std::string out =
            r.ok ? R"({"code":0,"msg":"success","data":)" + point_values_json(s.device(c.device), r.values) + "}"
                 : R"({"code":1,"msg":)";
        if (!r.ok) {
            append_json_string(out, r.reason);
            out += "}";
        }
        return {c.reply_topic, out, 0};
    }

    north::Inbound on_message(const north::SessionInfo& s, const std::string& topic, const std::string& payload,
                              const north::LatestValues&, std::uint32_t&) const override {
        north::Inbound in;
        if (topic.rfind("$creq/", 0) == 0 && topic.size() > 6) {
            in.kind = "$creq";
            in.command = true;
            north::Command c;
            c.kind = in.kind;
            c.id = topic.substr(6);
            c.reply_topic = "$crsp/" + c.id;
            std::string why, ignored;
            const bool ok =
                plain_command(*s.identity, payload, c.values, &ignored, &why, &c.requested_ms, &c.sets_state);
            return write_or_refuse(s, std::move(in), std::move(c), s.identity, ok, "command", why);
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
        if (c.keepalive < config::Duration{120'000}) {
            check.fail(c.mark_of("keepalive"), config::cloud_path(c) + ".keepalive",
                       "OneNET legacy MQTT expects a keepalive of at least 120s");
        }
        if (c.max_rate == 0) c.max_rate = 1.0;
        if (c.port == 0) c.port = 6002;
        payload_limit(check, c, kMaxBody + 3, kMaxBody + 3, "a $dp frame: 3 header bytes and at most 65,535 of body");
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
    assert(body.size() <= kMaxBody);  // the builders pack up to it
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
