#include "status.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <iostream>

#include "core/value.hpp"

namespace fieldlink::cli {

namespace {

// Per session: records the platform refused for good (per device and the platform's reason),
// writes from the cloud, values left out.
void print_notes(const nlohmann::json& s) {
    for (const auto& x : s.value("sessions", nlohmann::json::array())) {
        for (const auto& r : x.value("rejected", nlohmann::json::array())) {
            std::cout << fmt::format("refused by cloud {}: device {}: {} record(s): {}\n", x.value("cloud", "?"),
                                     r.value("device", "?"), r.value("records", 0ULL), r.value("reason", "?"));
        }
        const auto ok = x.value("writes_ok", 0ULL), failed = x.value("writes_failed", 0ULL);
        const auto refused = x.value("commands_refused", 0ULL);
        if (ok + failed + refused > 0) {
            std::cout << fmt::format(
                "session {}: writes from the cloud: {} done, {} failed on the bus, {} request(s) refused\n",
                x.value("name", "?"), ok, failed, refused);
        }
        if (const auto n = x.value("values_superseded", 0ULL)) {
            std::cout << fmt::format(
                "session {}: {} value(s) left out: a newer value of the same stream had the same second (the "
                "platform's times are whole seconds)\n",
                x.value("name", "?"), n);
        }
    }
}

// Every point's latest value, quality and age.
void print_values(const nlohmann::json& s) {
    std::cout << fmt::format("{:<24} {:<24} {:>16} {:<8} {:>7}\n", "DEVICE", "POINT", "VALUE", "QUALITY", "AGE s");
    for (const auto& d : s.value("devices", nlohmann::json::array())) {
        for (const auto& p : d.value("points", nlohmann::json::array())) {
            const auto v = p.value("value", nlohmann::json());
            std::cout << fmt::format("{:<24} {:<24} {:>16} {:<8} {:>7}\n", d.value("name", "?"), p.value("name", "?"),
                                     v.is_string() ? v.get<std::string>() : v.dump(), p.value("quality", "?"),
                                     p.contains("age_s") ? fmt::format("{:.1f}", p.value("age_s", 0.0)) : "-");
        }
    }
}

}  // namespace

int print_status(const std::string& data_dir, bool values) {
    const std::string path = data_dir + "/status.json";
    std::ifstream in(path);
    nlohmann::json s = nlohmann::json::parse(in, nullptr, false);
    if (!in || s.is_discarded() || !s.is_object()) {
        std::cerr << "fieldlink status: no readable " << path << " (has fieldlinkd run with this data_dir?)\n";
        return 1;
    }
    const double age = static_cast<double>(core::unix_ms_now() - s.value("time_ms", 0LL)) / 1000.0;
    // Written every period (1 s, longer with thousands of sessions): older than a few periods is stale.
    const double stale = std::max(10.0, 3.0 * static_cast<double>(s.value("period_ms", 1000LL)) / 1000.0);
    std::cout << fmt::format("status of {} ({:.0f} s old{}): {} of {} sessions connected\n", data_dir, age,
                             age > stale ? ", fieldlinkd is not running" : "", s.value("sessions_connected", 0ULL),
                             s.value("sessions_total", 0ULL));
    std::cout << fmt::format("{:<24} {:<12} {:<5} {:>10} {:>8} {:>9} {:>9} {:>12} {:>9}\n", "SESSION", "CLOUD", "UP",
                             "QUEUED", "IN MEM", "OLDEST s", "SENT/s", "SENT", "DROPPED");
    for (const auto& x : s.value("sessions", nlohmann::json::array())) {
        std::cout << fmt::format("{:<24} {:<12} {:<5} {:>10} {:>8} {:>9.1f} {:>9.1f} {:>12} {:>9}\n",
                                 x.value("name", "?"), x.value("cloud", "?"),
                                 x.value("connected", false) ? "yes" : "no", x.value("queued_on_disk", 0ULL),
                                 x.value("queued_in_memory", 0ULL), x.value("oldest_queued_age_s", 0.0),
                                 x.value("samples_sent_per_s", 0.0), x.value("samples_sent", 0ULL),
                                 x.value("samples_dropped_budget", 0ULL) + x.value("samples_dropped_memory", 0ULL));
    }
    print_notes(s);
    if (values) print_values(s);
    if (s.contains("store")) {
        const auto& st = s["store"];
        std::cout << fmt::format(
            "store {}: {} batches queued, {} bytes; {} appended, {} acknowledged; dropped samples: "
            "{} by the budget, {} of unconfigured devices, {} unwritable; {} corrupt\n",
            st.value("path", "?"), st.value("queued_batches", 0ULL), st.value("bytes_used", 0ULL),
            st.value("appended", 0ULL), st.value("acked", 0ULL), st.value("dropped_budget", 0ULL),
            st.value("dropped_unconfigured", 0ULL), st.value("dropped_unwritable", 0ULL), st.value("corrupt", 0ULL));
    }
    return age > stale ? 3 : 0;
}

}  // namespace fieldlink::cli
