// Any byte string as a points file (CSV register map): points or errors with positions, never a
// crash. The bytes are read as a device's `points_file`, so every row goes through the point
// table and validation as it would in a configuration.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "config/parser.hpp"
#include "load.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace fieldlink;
    static const std::string path = [] {
        const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        return dir + "/fl-fuzz-points-" + std::to_string(getpid()) + ".csv";
    }();
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    const std::string yaml =
        "clouds:\n  c: { platform: mqtt, host: 127.0.0.1 }\nbuses:\n  b: { driver: sim }\n"
        "devices:\n  - { name: d, cloud: c, bus: b, points_file: " +
        path + " }\n";
    auto r = load_config_text(yaml, "fuzz.yaml", nullptr);
    for (const auto& e : r.errors) (void)config::format_error("fuzz.yaml", e);
    return 0;
}
