#include "types.hpp"

#include <array>
#include <utility>

namespace fieldlink::config {
namespace {

constexpr std::array<std::pair<std::string_view, Area>, 4> kAreas{
    {{"coil", Area::coil}, {"discrete", Area::discrete}, {"input", Area::input}, {"holding", Area::holding}}};
constexpr std::array<std::pair<std::string_view, DataType>, 11> kTypes{{{"bool", DataType::boolean},
                                                                        {"int16", DataType::int16},
                                                                        {"uint16", DataType::uint16},
                                                                        {"int32", DataType::int32},
                                                                        {"uint32", DataType::uint32},
                                                                        {"int64", DataType::int64},
                                                                        {"uint64", DataType::uint64},
                                                                        {"float32", DataType::float32},
                                                                        {"float64", DataType::float64},
                                                                        {"string", DataType::string},
                                                                        {"bcd", DataType::bcd}}};
constexpr std::array<std::pair<std::string_view, WordOrder>, 4> kOrders{
    {{"abcd", WordOrder::abcd}, {"badc", WordOrder::badc}, {"cdab", WordOrder::cdab}, {"dcba", WordOrder::dcba}}};
constexpr std::array<std::pair<std::string_view, Report>, 3> kReports{
    {{"property", Report::property}, {"event", Report::event}, {"attribute", Report::attribute}}};
constexpr std::array<std::pair<std::string_view, Trigger>, 3> kTriggers{
    {{"change", Trigger::change}, {"rising", Trigger::rising}, {"none", Trigger::none}}};
constexpr std::array<std::pair<std::string_view, Aggregate>, 5> kAggregates{{{"last", Aggregate::last},
                                                                             {"min", Aggregate::min},
                                                                             {"max", Aggregate::max},
                                                                             {"mean", Aggregate::mean},
                                                                             {"count", Aggregate::count}}};

template <typename T, std::size_t N>
std::optional<T> lookup(const std::array<std::pair<std::string_view, T>, N>& table, std::string_view s) {
    for (const auto& [name, value] : table) {
        if (name == s) return value;
    }
    return std::nullopt;
}

template <typename T, std::size_t N>
const char* name_of(const std::array<std::pair<std::string_view, T>, N>& table, T v) {
    for (const auto& [name, value] : table) {
        if (value == v) return name.data();
    }
    return "?";
}

}  // namespace

std::optional<Area> parse_area(std::string_view s) {
    return lookup(kAreas, s);
}
std::optional<DataType> parse_type(std::string_view s) {
    return lookup(kTypes, s);
}
std::optional<WordOrder> parse_order(std::string_view s) {
    return lookup(kOrders, s);
}
std::optional<Report> parse_report(std::string_view s) {
    return lookup(kReports, s);
}
std::optional<Trigger> parse_trigger(std::string_view s) {
    return lookup(kTriggers, s);
}
std::optional<Aggregate> parse_aggregate(std::string_view s) {
    return lookup(kAggregates, s);
}
const char* to_string(Aggregate a) {
    return name_of(kAggregates, a);
}
const char* to_string(Report r) {
    return name_of(kReports, r);
}
const char* to_string(Area a) {
    return name_of(kAreas, a);
}
const char* to_string(DataType t) {
    return name_of(kTypes, t);
}
const char* to_string(WordOrder o) {
    return name_of(kOrders, o);
}

int register_count(DataType t, int string_length) {
    switch (t) {
        case DataType::boolean:
        case DataType::int16:
        case DataType::uint16:
        case DataType::bcd:
            return 1;
        case DataType::int32:
        case DataType::uint32:
        case DataType::float32:
            return 2;
        case DataType::int64:
        case DataType::uint64:
        case DataType::float64:
            return 4;
        case DataType::string:
            return string_length;
    }
    return 1;
}

}  // namespace fieldlink::config
