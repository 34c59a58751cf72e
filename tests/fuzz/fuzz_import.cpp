// Any byte string as a file to import (`fieldlink import`): a ThingsBoard Modbus connector
// configuration and a Neuron tag export. A draft and errors, never a crash.
#include <cstdint>
#include <string>

#include "cli/import.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    (void)fieldlink::cli::import_thingsboard(text, "fuzz.json", "cloud");
    (void)fieldlink::cli::import_neuron(text, "fuzz.csv", "cloud");
    return 0;
}
