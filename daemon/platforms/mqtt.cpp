// Generic MQTT: topic, client id and payload from templates; optional user name and password.
#include "platforms/json.hpp"
#include "platforms/platform.hpp"

namespace fieldlink::platforms {
namespace {

class MqttTemplate : public north::Profile {
  public:
    explicit MqttTemplate(const config::CloudConfig& c)
        : north::Profile(c), per_point_(c.topic.find("{point}") != std::string::npos) {}

    std::optional<north::Credentials> credentials(const north::SessionInfo& s, std::int64_t,
                                                  std::string*) const override {
        core::SampleBatch empty;
        return north::Credentials{expand_template(cloud_.client_id, *s.identity, empty, nullptr), cloud_.username,
                                  cloud_.password, 0};
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
                    p.messages.emplace_back(expand_template(cloud_.topic, d, b, &pv),
                                            expand_template(cloud_.payload, d, b, &pv), 1);
                }
            } else if (std::string payload = expand_template(cloud_.payload, d, b, nullptr);
                       payload.size() <= max_payload()) {
                p.messages.emplace_back(expand_template(cloud_.topic, d, b, nullptr), std::move(payload),
                                        b.values.size());
            } else {  // one sample set larger than a message: its values over several
                const auto render = [&](const core::SampleBatch& part) {
                    return expand_template(cloud_.payload, d, part, nullptr);
                };
                for (const auto& part : north::split_values(b, max_payload(), render)) {
                    p.messages.emplace_back(expand_template(cloud_.topic, d, part, nullptr), render(part),
                                            part.values.size());
                }
            }
            out.push_back(std::move(p));
        }
        return out;
    }

    int qos() const override { return cloud_.qos; }

  private:
    bool per_point_;
};

class MqttPlatform : public Platform {
  public:
    const char* name() const override { return "mqtt"; }
    void check_cloud(config::CloudConfig& c, config::Checker& check) const override {
        no_variants(check, c);
        payload_limit(check, c, std::uint64_t{256} * 1024, std::uint64_t{256} << 20, "the MQTT maximum");
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
