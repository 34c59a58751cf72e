// `fieldlink scan`: finds the Modbus units on a serial line (trying the usual baud rates and
// parities) or behind a Modbus TCP host, identifies them (FC 43/14 device identification, a
// SunSpec map), matches them with the profile library, and prints a table or a draft
// configuration. It only reads: no request it sends writes to a device.
#pragma once

#include <string>
#include <vector>

namespace fieldlink::cli {

struct ScanOptions {
    std::string tcp;               // HOST[:PORT]
    std::string rtu;               // serial device
    std::vector<int> bauds;        // empty: 9600, 19200, 38400, 115200, 57600, 4800, 2400
    std::string parities = "NEO";  // tried in this order at each baud rate
    std::string units = "1-247";
    std::string timeout;        // per probe; empty: 100ms on a serial line, 200ms over TCP
    bool all_settings = false;  // keep trying line settings after units answered at one
    bool yaml = false;          // print a draft configuration instead of the table
    std::string output;         // write the draft configuration here (the table still printed)
    std::string cloud = "cloud";
};

// Exit status: 0 when a unit answered, 1 when none did, 2 for bad options or a port that cannot
// be opened.
int run_scan(const ScanOptions& o);

}  // namespace fieldlink::cli
