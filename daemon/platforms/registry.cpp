// The platform registry: adding a platform is its own file and one entry in FL_PLATFORMS.
#include <fmt/format.h>

#include <algorithm>

#include "config/parser.hpp"
#include "core/log.hpp"
#include "core/suggest.hpp"
#include "platforms/platform.hpp"

// An X-macro, so that registering a platform is exactly one word on this line.
// NOLINTNEXTLINE(cppcoreguidelines-macro-usage)
#define FL_PLATFORMS(X) X(onenet) X(onenet_legacy) X(aiot) X(thingsboard) X(mqtt) X(sparkplug)

namespace fieldlink::platforms {

#define FL_DECLARE(id) const Platform& id##_platform();  // NOLINT(cppcoreguidelines-macro-usage)
FL_PLATFORMS(FL_DECLARE)
#undef FL_DECLARE

const std::vector<const Platform*>& all() {
#define FL_ENTRY(id) &id##_platform(),  // NOLINT(cppcoreguidelines-macro-usage)
    static const std::vector<const Platform*> platforms{FL_PLATFORMS(FL_ENTRY)};
#undef FL_ENTRY
    return platforms;
}

const Platform* find(const std::string& name) {
    for (const auto* p : all()) {
        if (name == p->name()) return p;
    }
    return nullptr;
}

// A name that goes into MQTT topics, client ids, JSON and metric labels: not empty, UTF-8 without
// control characters (MQTT strings must be UTF-8 and may not hold U+0000), and no '+' or '#'
// (a device named '+' would subscribe to every other device's commands). Empty when it is fine,
// else why not.
std::string Platform::mqtt_name_problem(const std::string& name) {
    if (name.empty()) return "is empty";
    if (core::printable(name, name.size() + 1) != name)
        return "holds control characters or bytes that are not UTF-8 (MQTT topics and client ids are UTF-8 text)";
    if (name.find_first_of("+#") != std::string::npos)
        return "holds '+' or '#', the MQTT wildcards (its topics would match other devices' messages)";
    return {};
}

void Platform::check_device(const config::Config& cfg, std::size_t index, config::Checker& check) const {
    const auto& d = cfg.devices[index];
    if (const auto why = mqtt_name_problem(d.name); !why.empty()) {
        check.fail(d.mark, config::device_path(index) + ".name",
                   "device name '" + core::printable(d.name, 64) + "' " + why +
                       "; expected a name usable as an MQTT "
                       "topic level");
    }
    for (const auto& p : d.points) {
        if (const auto why = mqtt_name_problem(p.name); !why.empty()) {
            check.fail(p.mark, config::device_path(index) + ".points",
                       "point name '" + core::printable(p.name, 64) + "' " + why);
        }
    }
    if (d.gateway) {
        check.fail(d.mark, config::device_path(index) + ".gateway",
                   "gateway devices need a cloud with platform onenet and protocol thing-model");
    }
    if (d.via_index) {
        check.fail(d.mark, config::device_path(index) + ".via",
                   "sub-devices need a cloud with platform onenet and protocol thing-model");
    }
}

void Platform::require(config::Checker& check, const config::CloudConfig& c, const std::string& value,
                       const char* key) {
    if (value.empty()) {
        check.fail(c.mark, config::cloud_path(c),
                   std::string("missing required key '") + key + "' for platform " + c.platform);
    }
}

void Platform::payload_limit(config::Checker& check, config::CloudConfig& c, std::uint64_t dflt, std::uint64_t max,
                             const char* why) {
    if (c.max_payload_size == 0) c.max_payload_size = dflt;
    if (c.max_payload_size > max) {
        check.fail(c.mark_of("max_payload_size"), config::cloud_path(c) + ".max_payload_size",
                   std::to_string(c.max_payload_size) + " bytes is over the platform's limit; expected at most " +
                       std::to_string(max) + " (" + why + ")");
    }
}

namespace {

// The keys of a cloud beyond the shared ones: the platform's own are its to check; one that other
// platforms own is refused naming them; any other is unknown, with the keys this platform takes.
void check_options(const Platform& mine, const config::CloudConfig& c, config::Checker& check) {
    const auto owns = [](const Platform& p, const std::string& key) {
        const auto keys = p.own_keys();
        return std::any_of(keys.begin(), keys.end(), [&key](const OwnKey& k) { return key == k.key; });
    };
    for (const auto& o : c.options) {
        const std::string& key = o.key;
        const config::Mark& mark = o.mark;
        if (owns(mine, key)) continue;
        std::string owners, values;
        for (const auto* p : all()) {
            for (const auto& k : p->own_keys()) {
                if (key != k.key) continue;
                owners += (owners.empty() ? "" : ", ") + std::string(p->name());
                values = k.values;
            }
        }
        if (!owners.empty()) {
            check.fail(mark, config::cloud_path(c) + "." + key,
                       fmt::format("'{}' applies to platform {} only ({})", key, owners, values));
            continue;
        }
        std::string expected;
        for (const char* k : config::cloud_keys()) expected += (expected.empty() ? "" : ", ") + std::string(k);
        for (const auto& k : mine.own_keys()) expected += ", " + std::string(k.key);
        check.fail(mark, config::cloud_path(c),
                   fmt::format("unknown key '{}'{} for platform {}; expected one of: {}", key,
                               core::did_you_mean(key, core::words(expected)), mine.name(), expected));
    }
}

}  // namespace

namespace {

// remote_config and diagnostics need a channel to the gateway, which only some platforms have.
void check_channels(const Platform& platform, const config::CloudConfig& c, config::Checker& check) {
    for (const char* key : {"remote_config", "diagnostics"}) {
        const bool on = std::string(key) == "remote_config" ? c.remote_config : c.diagnostics;
        if (!on || platform.takes_remote_config(c)) continue;
        std::string takers;
        for (const auto* p : all()) {
            if (p->remote_config_where())
                takers += (takers.empty() ? "" : ", ") + std::string(p->remote_config_where());
        }
        const bool pushed = std::string(key) == "remote_config";
        check.fail(c.mark_of(key), config::cloud_path(c) + "." + key,
                   std::string("this cloud has no channel to the gateway for ") +
                       (pushed ? "configuration pushed to it" : "diagnostics requests") + "; " + key +
                       " works on: " + takers);
    }
}

}  // namespace

void validate(config::Config& cfg, std::vector<config::ConfigError>& errors) {
    config::Checker check(errors);
    std::vector<const Platform*> of_cloud(cfg.clouds.size(), nullptr);
    for (std::size_t i = 0; i < cfg.clouds.size(); ++i) {
        auto& c = cfg.clouds[i];
        of_cloud[i] = find(c.platform);
        if (!of_cloud[i]) {
            std::string names;
            for (const auto* p : all()) names += (names.empty() ? "" : ", ") + std::string(p->name());
            check.fail(c.mark_of("platform"), config::cloud_path(c) + ".platform",
                       "unknown value '" + c.platform + "'" + core::did_you_mean(c.platform, core::words(names)) +
                           "; expected one of: " + names);
            continue;
        }
        of_cloud[i]->check_cloud(c, check);
        check_options(*of_cloud[i], c, check);
        check_channels(*of_cloud[i], c, check);
        if (c.port == 0) c.port = c.tls ? 8883 : 1883;
    }
    for (std::size_t i = 0; i < cfg.devices.size(); ++i) {
        const auto ci = cfg.devices[i].cloud_index;
        if (ci < of_cloud.size() && of_cloud[ci]) of_cloud[ci]->check_device(cfg, i, check);
    }
}

std::vector<std::unique_ptr<north::Profile>> make_profiles(const config::Config& cfg) {
    std::vector<std::unique_ptr<north::Profile>> out;
    for (const auto& c : cfg.clouds) {
        const Platform* p = find(c.platform);
        out.push_back(p ? p->make_profile(c) : nullptr);
    }
    return out;
}

}  // namespace fieldlink::platforms
