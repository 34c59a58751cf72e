#include "mapping/report.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <variant>

namespace fieldlink::mapping {
namespace {

bool truthy(const core::Value& v) {
    return std::visit(
        [](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>) {
                return !x.empty();
            } else {
                return x != T{};
            }
        },
        v);
}

}  // namespace

ReportFilter::ReportFilter(const config::DeviceConfig& dc) {
    for (const auto& p : dc.points) {
        if (p.on_trigger()) seen_.resize(dc.points.size());
        if (p.by_exception()) {
            sent_.resize(dc.points.size());
            sent_at_.resize(dc.points.size());
        }
    }
}

void ReportFilter::forget(std::uint32_t point) {
    if (point < seen_.size()) seen_[point].reset();
    forget_sent(point);
}

void ReportFilter::forget_sent(std::uint32_t point) {
    if (point < sent_.size()) sent_[point].reset();
}

// A property reported by exception goes with its first reading, when it moved past its deadband
// from the value last sent (any change with on_change), or when its heartbeat is due.
bool ReportFilter::report_now(const config::PointConfig& p, std::uint32_t index, const core::Value& v, TimePoint now) {
    auto& last = sent_[index];
    bool send = !last || (p.heartbeat.count() > 0 && now - sent_at_[index] >= p.heartbeat);
    if (!send && p.deadband > 0.0) {
        const double delta = std::fabs(core::number_of(v) - core::number_of(*last));
        const double band = p.deadband_percent ? std::fabs(core::number_of(*last)) * p.deadband / 100.0 : p.deadband;
        send = delta > band || (band == 0.0 && delta > 0.0) || std::isnan(delta);
    } else if (!send) {
        send = v != *last;
    }
    if (send) {
        last = v;
        sent_at_[index] = now;
    }
    return send;
}

// An event's or attribute's trigger: on a change (and the first reading), or when the value
// becomes true / non-zero.
bool ReportFilter::fires(const config::PointConfig& p, std::uint32_t index, const core::Value& v) {
    auto& last = seen_[index];
    bool fire = false;
    switch (p.trigger) {
        case config::Trigger::change:
            fire = !last || *last != v;
            break;
        case config::Trigger::rising:
            fire = truthy(v) && (!last || !truthy(*last));
            break;
        case config::Trigger::none:
            break;
    }
    last = v;
    return fire;
}

void ReportFilter::apply(const config::DeviceConfig& dc, core::SampleBatch& batch, TimePoint now) {
    if (seen_.empty() && sent_.empty()) return;
    std::vector<bool> keep(batch.values.size(), true);
    std::vector<const std::string*> fired;
    for (std::size_t i = 0; i < batch.values.size(); ++i) {
        const auto& pv = batch.values[i];
        const auto& p = dc.points[pv.point_index];
        if (p.by_exception()) keep[i] = report_now(p, pv.point_index, pv.value, now);
        if (!p.on_trigger()) continue;
        keep[i] = fires(p, pv.point_index, pv.value);
        if (keep[i] && p.report == config::Report::event) fired.push_back(&p.event_name());
    }
    std::size_t out = 0;
    for (std::size_t i = 0; i < batch.values.size(); ++i) {
        const auto& p = dc.points[batch.values[i].point_index];
        const bool carried =
            !keep[i] && p.report == config::Report::event &&
            std::any_of(fired.begin(), fired.end(), [&](const auto* e) { return *e == p.event_name(); });
        if (keep[i] || carried) {
            if (out != i) batch.values[out] = std::move(batch.values[i]);
            ++out;
        }
    }
    batch.values.resize(out);
}

}  // namespace fieldlink::mapping
