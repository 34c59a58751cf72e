// The parts of `fieldlink scan` that read what comes from the wire or from a file, kept free of
// I/O so that unit tests and a fuzz target reach them: Read Device Identification answers (FC 43,
// MEI type 14; libmodbus 3.1 has no support for them), late answers drained from a serial line,
// unit id lists, the profile library's `# match:` lines, and the table and draft configuration.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fieldlink::cli {

// One Read Device Identification answer, parsed from an ADU as it arrives.
struct DeviceIdAnswer {
    enum class Status { incomplete, complete, exception, invalid };
    Status status = Status::incomplete;
    std::string error;       // invalid: what is wrong, and at which byte
    std::size_t length = 0;  // bytes of the ADU it takes (complete, exception)
    int exception = 0;
    int conformity = 0;
    bool more = false;
    int next_object = 0;
    std::vector<std::pair<int, std::string>> objects;  // (object id, value), as sent
};

// `adu` is what was read so far: for RTU (`rtu`) unit, PDU, CRC; for TCP the MBAP header (7
// bytes), then the PDU. The answer must come from `unit`, to FC 43 / MEI 14.
DeviceIdAnswer parse_device_id(const std::uint8_t* adu, std::size_t n, bool rtu, int unit);

// The request (unit, 0x2B, 0x0E, read code, object id), without CRC or header.
std::vector<std::uint8_t> device_id_request(int unit, int read_code, int object_id);

// Units whose well-formed answer to a register read (FC 3, or its exception) is in `bytes`, read
// off a serial line after the answer's time was up: they are there, only slow.
std::vector<int> late_answer_units(const std::vector<std::uint8_t>& bytes);

// "1-247", "3,17,20-30": unit ids in 1..247, sorted, each once; nullopt with `error` otherwise.
std::optional<std::vector<int>> parse_unit_list(const std::string& text, std::string& error);

// A profile's identification rules (`# match:` lines of profiles/NAME.csv), any one suffices:
//   # match: vendor=Schneider Electric; product=iEM3     (FC 43 VendorName and ProductCode/ModelName, case-insensitive
//   substrings) # match: sunspec=101,102,103; base=40000              (a SunSpec map holding one of these models, at
//   that base)
struct ProfileRule {
    std::string vendor, product;
    std::vector<int> sunspec_models;
    int sunspec_base = -1;  // any
};
struct Profile {
    std::string name;  // the file's stem: the template's name and points_file
    std::vector<ProfileRule> rules;
};
// The rules of one profile file's text; a malformed `# match:` line goes to `errors` as
// "NAME:LINE: what".
Profile read_profile_rules(const std::string& name, const std::string& text, std::vector<std::string>& errors);

// What a scan learnt about one unit.
struct FoundUnit {
    int unit = 0;
    bool late = false;                                  // only seen as a late answer
    int exception = 0;                                  // the probe's exception code (0: it read register 0)
    std::uint16_t register0 = 0;                        // holding register 0, when read
    std::string vendor, product, revision, model_name;  // FC 43 objects 0, 1, 2, 5
    int sunspec_base = -1;                              // where "SunS" was found
    std::vector<int> sunspec_models;                    // the model ids of its map, in order
    std::string sunspec_manufacturer, sunspec_model;
    std::string profile;  // the matched profile, if any
};

// The first profile whose rule matches `u`, or "".
std::string match_profile(const std::vector<Profile>& profiles, const FoundUnit& u);

struct ScanReport {
    bool rtu = false;
    std::string device;  // serial device, or host
    int port = 502;      // TCP
    int baud = 0;        // RTU: the setting the units answered at
    char parity = 'N';
    std::vector<FoundUnit> units;
    long probes = 0, garbled = 0, late = 0;
    double seconds = 0;
};

// The report as a table, one line per unit, and a summary line.
std::string scan_table(const ScanReport& r);
// A draft configuration (clouds:, buses:, templates:, devices:) that `fieldlink check` accepts:
// a template where a profile matched, else holding register 0 where it was read (a device
// answering only with an exception is written commented out, its points left to the reader).
std::string scan_yaml(const ScanReport& r, const std::string& cloud);

}  // namespace fieldlink::cli
