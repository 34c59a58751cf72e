// Generic MQTT: topic, client id and payload from templates; optional user name and password.
#include "profile.hpp"

namespace fieldlink::north {
namespace {

class MqttTemplate : public Profile {
public:
    explicit MqttTemplate(const core::CloudConfig& c)
        : cloud_(c), per_point_(c.topic.find("{point}") != std::string::npos) {}

    std::optional<Credentials> credentials(const SessionInfo& s, std::int64_t, std::string*) const override {
        core::SampleBatch empty;
        return Credentials{expand_template(cloud_.client_id, *s.identity, empty, nullptr), cloud_.username,
                           cloud_.password};
    }

    std::vector<Message> build(const SessionInfo& s, std::deque<core::SampleBatch>& pending,
                               std::size_t max_messages, std::uint32_t&) const override {
        std::vector<Message> out;
        while (!pending.empty() && out.size() < max_messages) {
            const auto& b = pending.front();
            const auto& d = s.device(b.device_index);
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

std::unique_ptr<Profile> make_mqtt_template(const core::CloudConfig& c) { return std::make_unique<MqttTemplate>(c); }

}  // namespace fieldlink::north
