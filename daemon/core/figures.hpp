// Counters declared once. Each stats struct of the gateway (a session's, the store's, a device's)
// comes with one table of its figures: the key status.json gives it, the Prometheus family
// /metrics exports it as (with # HELP and # TYPE) and the words of the stop line. The status
// writer, the metrics and the log line are generated from that table, so a new counter is one
// field and one row.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fieldlink::core {

enum class MetricType { counter, gauge };

// The value of a field, plain or atomic (counters the bus workers count while others read).
inline std::uint64_t figure_value(std::uint64_t v) {
    return v;
}
inline std::uint64_t figure_value(const std::atomic<std::uint64_t>& v) {
    return v.load(std::memory_order_relaxed);
}

template <typename Stats, typename Field = std::uint64_t>
struct Figure {
    Field Stats::*field = nullptr;
    std::string_view status;  // key in status.json ("": not shown there)
    std::string_view metric;  // Prometheus family ("": not exported); rows of one family are adjacent
    std::string_view label;   // the row's own label within its family, e.g. result="ok" ("": none)
    MetricType type = MetricType::counter;
    std::string_view help;   // # HELP of the family (its first row's)
    std::string_view words;  // the stop line's words after the number ("": not in it)
};

// "# HELP" and "# TYPE" of one family.
std::string metric_header(std::string_view name, MetricType type, std::string_view help);
// A label value in the text format's quoting: backslash, double quote and line feed escaped.
std::string metric_label(std::string_view value);
// One sample line: name{labels} value ("" labels: none).
std::string metric_line(std::string_view name, std::string_view labels, std::uint64_t value);
std::string metric_line(std::string_view name, std::string_view labels, double value);

// The stop line's part for one table: "<n> <words>" for each row with words, joined by ", ".
template <typename Stats, typename Table>
std::string figure_words(const Table& table, const Stats& s) {
    std::string out;
    for (const auto& f : table) {
        if (f.words.empty()) continue;
        if (!out.empty()) out += ", ";
        out += std::to_string(figure_value(s.*(f.field)));
        out += ' ';
        out += f.words;
    }
    return out;
}

// Whether `row` opens its family (no earlier row of the table has its name).
template <typename Table>
bool opens_family(const Table& table, std::size_t row) {
    for (std::size_t i = 0; i < row; ++i) {
        if (table[i].metric == table[row].metric) return false;
    }
    return true;
}

// A table's families in the text format: each family's header, then one line per subject with
// the subject's labels (and the row's own label) and `value(row, subject)`, every piece handed to
// `out`. A single subject without labels: `labels` is {""}.
template <typename Table, typename Value, typename Out>
void print_families(const Table& table, const std::vector<std::string>& labels, const Value& value, const Out& out) {
    for (std::size_t f = 0; f < table.size(); ++f) {
        const auto& row = table[f];
        if (row.metric.empty()) continue;
        if (opens_family(table, f)) out(metric_header(row.metric, row.type, row.help));
        for (std::size_t i = 0; i < labels.size(); ++i) {
            std::string l = labels[i];
            if (!row.label.empty()) l += (l.empty() ? "" : ",") + std::string(row.label);
            out(metric_line(row.metric, l, value(row, i)));
        }
    }
}

}  // namespace fieldlink::core
