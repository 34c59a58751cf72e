#include "mapping/window.hpp"

#include <algorithm>

namespace fieldlink::mapping {

PublishWindow::PublishWindow(const config::DeviceConfig& dc) : acc_(dc.points.size()) {}

void PublishWindow::add(const config::DeviceConfig& dc, core::SampleBatch& batch) {
    if (acc_.size() != dc.points.size()) acc_.assign(dc.points.size(), Acc{});
    auto held = std::stable_partition(batch.values.begin(), batch.values.end(), [&](const core::PointValue& pv) {
        const auto& p = dc.points[pv.point_index];
        return p.report != config::Report::property || p.link;  // these go now
    });
    bool any = false;
    for (auto it = held; it != batch.values.end(); ++it) {
        Acc& a = acc_[it->point_index];
        const double x = core::number_of(it->value);
        if (a.n == 0 || x < core::number_of(a.min)) a.min = it->value;
        if (a.n == 0 || x > core::number_of(a.max)) a.max = it->value;
        a.sum += x;
        a.last = std::move(it->value);
        ++a.n;
        any = true;
    }
    batch.values.erase(held, batch.values.end());
    if (!any) return;
    ++samples_;
    last_ms_ = batch.timestamp_ms;
    last_boot_ms_ = batch.boot_ms;
}

void PublishWindow::take(const config::DeviceConfig& dc, core::SampleBatch& out) {
    if (samples_ == 0) return;
    for (std::uint32_t i = 0; i < acc_.size() && i < dc.points.size(); ++i) {
        Acc& a = acc_[i];
        if (a.n == 0) continue;
        core::Value v;
        switch (dc.points[i].aggregate) {
            case config::Aggregate::last:
                v = std::move(a.last);
                break;
            case config::Aggregate::min:
                v = std::move(a.min);
                break;
            case config::Aggregate::max:
                v = std::move(a.max);
                break;
            case config::Aggregate::mean:
                v = a.sum / static_cast<double>(a.n);
                break;
            case config::Aggregate::count:
                v = static_cast<std::uint64_t>(a.n);
                break;
        }
        out.values.push_back({i, std::move(v)});
        a = Acc{};
    }
    out.timestamp_ms = last_ms_;
    out.boot_ms = last_boot_ms_;
    samples_ = 0;
}

}  // namespace fieldlink::mapping
