#pragma once

#include <string>
#include <vector>

namespace fieldlink::cli {

struct SimulatorOptions {
    std::string tcp;  // HOST:PORT
    std::string rtu;  // serial device
    int baud = 9600;
    std::vector<int> units{1};
    long tick_ms = 100;
    bool control = true;
};

int run_simulator(const SimulatorOptions& opts);

}  // namespace fieldlink::cli
