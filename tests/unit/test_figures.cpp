// The counter tables (core/figures.hpp): each family's rows adjacent with one help text, status
// keys unique, the text format's label quoting, and the stop line generated from a table.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "bus/bus_worker.hpp"
#include "core/figures.hpp"
#include "north/counters.hpp"
#include "store/stats.hpp"

using namespace fieldlink;

namespace {

template <typename Table>
void check_table(const Table& table) {
    std::set<std::string_view> keys, closed;
    std::string_view open;
    for (std::size_t i = 0; i < table.size(); ++i) {
        const auto& f = table[i];
        if (!f.status.empty()) {
            INFO(f.status);
            CHECK(keys.insert(f.status).second);
        }
        if (f.metric.empty()) continue;
        INFO(f.metric);
        CHECK(f.metric.substr(0, 10) == "fieldlink_");
        CHECK((f.type == core::MetricType::counter) ==
              (f.metric.size() > 6 && f.metric.substr(f.metric.size() - 6) == "_total"));
        if (f.metric != open) {
            CHECK(closed.count(f.metric) == 0);  // a family's rows come together
            if (!open.empty()) closed.insert(open);
            open = f.metric;
            CHECK(core::opens_family(table, i));
            CHECK(!f.help.empty());
        } else {
            CHECK(!core::opens_family(table, i));
            CHECK(!f.label.empty());  // rows of one family differ by their label
        }
    }
}

}  // namespace

TEST_CASE("figures: every table's families are whole, helped and named as the text format wants") {
    check_table(north::figures::kSession);
    check_table(store::figures::kStore);
    check_table(bus::figures::kDevice);
}

TEST_CASE("figures: label values are quoted as the Prometheus text format says") {
    CHECK(core::metric_label("plain") == "\"plain\"");
    CHECK(core::metric_label("a\"b\\c\nd") == "\"a\\\"b\\\\c\\nd\"");
    CHECK(core::metric_label("Kessel 温度") == "\"Kessel 温度\"");
    CHECK(core::metric_header("fieldlink_x_total", core::MetricType::counter, "X.") ==
          "# HELP fieldlink_x_total X.\n# TYPE fieldlink_x_total counter\n");
    CHECK(core::metric_line("fieldlink_x_total", "", std::uint64_t{7}) == "fieldlink_x_total 7\n");
    CHECK(core::metric_line("fieldlink_x", "a=\"b\"", 0.5) == "fieldlink_x{a=\"b\"} 0.500\n");
}

TEST_CASE("figures: the stop line comes from the table, in its order") {
    north::SessionCounters c;
    c.messages_sent = 5;
    c.messages_acked = 4;
    c.samples_sent = 40;
    c.writes_failed = 1;
    const std::string line = core::figure_words(north::figures::kSession, c);
    CHECK(line.rfind("5 messages sent, 4 acknowledged, 40 samples sent, 0 dropped, ", 0) == 0);
    CHECK(line.find("1 writes failed") != std::string::npos);
    CHECK(line.find("connect") == std::string::npos);  // rows without words are left out
    bus::DeviceCounters d;
    d.polls = 3;
    d.ok = 2;
    CHECK(core::figure_words(bus::figures::kDevice, d).rfind("3 polls, 2 ok, 0 timeouts", 0) == 0);
}
