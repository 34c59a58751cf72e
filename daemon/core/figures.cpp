#include "core/figures.hpp"

#include <fmt/format.h>

namespace fieldlink::core {

std::string metric_header(std::string_view name, MetricType type, std::string_view help) {
    return fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                       type == MetricType::counter ? "counter" : "gauge");
}

std::string metric_label(std::string_view value) {
    std::string out = "\"";
    for (const char c : value) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string metric_line(std::string_view name, std::string_view labels, std::uint64_t value) {
    return labels.empty() ? fmt::format("{} {}\n", name, value) : fmt::format("{}{{{}}} {}\n", name, labels, value);
}

std::string metric_line(std::string_view name, std::string_view labels, double value) {
    return labels.empty() ? fmt::format("{} {:.3f}\n", name, value)
                          : fmt::format("{}{{{}}} {:.3f}\n", name, labels, value);
}

}  // namespace fieldlink::core
