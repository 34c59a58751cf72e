// A cloud platform: its configuration rules (which keys a cloud and its devices need, defaults,
// names, topology) and the profile that speaks it. One file per platform; registry.cpp lists
// them (adding a platform is its own file and one line there).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "north/profile.hpp"

namespace fieldlink::platforms {

// A cloud key that only some platforms take, with what its values are (for the error message a
// cloud of another platform gets when it gives the key).
struct OwnKey {
    const char* key;
    const char* values;
};

class Platform {
  public:
    virtual ~Platform() = default;
    virtual const char* name() const = 0;
    // The cloud keys this platform takes that others refuse (the registry checks them: a cloud
    // giving a key its platform does not own is told which platforms take it).
    virtual std::vector<OwnKey> own_keys() const { return {}; }
    // Checks a cloud of this platform and fills in the platform's defaults.
    virtual void check_cloud(config::CloudConfig& cloud, config::Checker& check) const = 0;
    // Checks one device of a cloud of this platform (its keys, names, point names, topology).
    // The default refuses gateway topology, which only some platforms have.
    virtual void check_device(const config::Config& cfg, std::size_t index, config::Checker& check) const;
    // Why `name` cannot be an MQTT topic level or client id ("" when it can).
    static std::string mqtt_name_problem(const std::string& name);
    virtual std::unique_ptr<north::Profile> make_profile(const config::CloudConfig& cloud) const = 0;
    // Whether a cloud of this platform has a channel for configuration pushed to the gateway
    // (`remote_config: true`; refused elsewhere), and where (for the message refusing it).
    virtual bool takes_remote_config(const config::CloudConfig&) const { return false; }
    virtual const char* remote_config_where() const { return nullptr; }

  protected:
    // A key the platform requires.
    static void require(config::Checker& check, const config::CloudConfig& c, const std::string& value,
                        const char* key);
    // The message size limit: `dflt` when not given; above `max` (the platform's own) refused.
    static void payload_limit(config::Checker& check, config::CloudConfig& c, std::uint64_t dflt, std::uint64_t max,
                              const char* why);
};

// Every registered platform, in registration order.
const std::vector<const Platform*>& all();
const Platform* find(const std::string& name);

// The platform stage of configuration checking: each cloud's platform exists and accepts the
// cloud; each device is accepted by its cloud's platform. Fills in platform defaults.
void validate(config::Config& cfg, std::vector<config::ConfigError>& errors);

// One profile per configured cloud (same order as cfg.clouds). The configuration must have
// passed validate().
std::vector<std::unique_ptr<north::Profile>> make_profiles(const config::Config& cfg);

}  // namespace fieldlink::platforms
