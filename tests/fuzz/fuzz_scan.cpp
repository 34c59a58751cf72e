// Any bytes as what `fieldlink scan` reads from outside: a Read Device Identification answer (TCP
// and RTU, at every length it may have reached), what a serial line left behind (late answers),
// a --units list and a profile's `# match:` lines; and what the identification objects become in
// the table and the draft configuration. Each is parsed or refused, never a crash.
#include <cstdint>
#include <string>
#include <vector>

#include "cli/scan_frames.hpp"

namespace {

fieldlink::cli::FoundUnit unit_from(const fieldlink::cli::DeviceIdAnswer& a, int unit) {
    fieldlink::cli::FoundUnit u;
    u.unit = unit;
    u.exception = a.exception;
    for (const auto& [id, value] : a.objects) {
        if (id == 0) u.vendor = value;
        if (id == 1) u.product = value;
        if (id == 2) u.revision = value;
        if (id == 5) u.model_name = value;
    }
    if (a.more) {
        u.sunspec_base = 40000;
        u.sunspec_models = {1, a.next_object};
        u.profile = "sunspec-inverter";
    }
    return u;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using fieldlink::cli::DeviceIdAnswer;
    const int unit = size > 0 ? data[0] : 1;
    fieldlink::cli::ScanReport report;
    report.device = "/dev/ttyUSB0";
    report.baud = 9600;
    for (bool rtu : {false, true}) {
        for (std::size_t n = 0; n <= size; n += (size / 8) + 1)
            (void)fieldlink::cli::parse_device_id(data, n, rtu, unit);
        const auto a = fieldlink::cli::parse_device_id(data, size, rtu, unit);
        if (a.status == DeviceIdAnswer::Status::complete && a.length > size) __builtin_trap();
        if (a.status == DeviceIdAnswer::Status::complete || a.status == DeviceIdAnswer::Status::exception) {
            report.rtu = rtu;
            report.units.push_back(unit_from(a, unit));
        }
    }
    if (!report.units.empty()) {
        (void)fieldlink::cli::scan_table(report);
        (void)fieldlink::cli::scan_yaml(report, "cloud");
    }
    const std::vector<std::uint8_t> bytes(data, data + size);
    (void)fieldlink::cli::late_answer_units(bytes);
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::string err;
    (void)fieldlink::cli::parse_unit_list(text, err);
    std::vector<std::string> errors;
    const auto p = fieldlink::cli::read_profile_rules("fuzz", text, errors);
    fieldlink::cli::FoundUnit u;
    u.vendor = text.substr(0, 16);
    u.product = text.size() > 16 ? text.substr(16) : "";
    (void)fieldlink::cli::match_profile({p}, u);
    return 0;
}
