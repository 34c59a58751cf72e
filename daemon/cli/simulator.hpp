#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fieldlink::cli {

// Words (or bits) a unit starts with at an address: what a configuration's points should read.
struct Preset {
    int unit = 1;
    config::Area area = config::Area::holding;
    std::uint16_t address = 0;
    std::vector<std::uint16_t> words;  // bit areas: 0 or 1 each
    bool bit_field = false;            // words[0] holds one bit, `bit`, of the register
    int bit = 0;
};

// Plausible start values for every Modbus point of `cfg` (`simulate --config`): the middle of
// [min, max] where the point has both, else 20 + 1.5 i for reals, 100 + i for whole numbers, the
// point's name for text, alternating for booleans (i: the point's index in its device).
std::vector<Preset> presets_from(const config::Config& cfg);
// The unit ids of the Modbus devices of `cfg`, each once, in order.
std::vector<int> units_of(const config::Config& cfg);

struct SimulatorOptions {
    std::string tcp;  // HOST:PORT
    std::string rtu;  // serial device
    int baud = 9600;
    char parity = 'N';  // N, E or O
    // Read Device Identification (FC 43/14): VendorName, ProductCode, MajorMinorRevision.
    std::string vendor = "fieldlink";
    std::string product = "simulator";
    std::string revision = "1.0";
    std::vector<int> units{1};
    long tick_ms = 100;
    long answer_us = 0;  // Modbus TCP: how long a unit takes to answer (a PLC's scan, a gateway's line)
    bool control = true;
    std::vector<Preset> presets;
};

int run_simulator(const SimulatorOptions& opts);

}  // namespace fieldlink::cli
