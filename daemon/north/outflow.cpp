#include "outflow.hpp"

#include <algorithm>
#include <cstdint>

namespace fieldlink::north {

Outflow::Pushed Outflow::push(core::SampleBatch&& batch, std::size_t window, bool durable) {
    Pushed out;
    if (live_.size() >= window) {
        if (live_.front().record_id != 0 && durable) {
            on_disk_ = true;  // still on disk: it comes back through the backlog, in order
        } else {
            out.samples_dropped = live_.front().values.size();  // nothing else holds it
            out.first_drop = !dropping_;
            dropping_ = true;
        }
        live_.pop_front();
    }
    live_.push_back(std::move(batch));
    return out;
}

void Outflow::forget_through(std::int64_t id) {
    auto drop = [id](std::deque<core::SampleBatch>& q) {
        while (!q.empty() && q.front().record_id != 0 && q.front().record_id <= id) q.pop_front();
    };
    drop(backlog_);
    drop(live_);
    disk_after_ = std::max(disk_after_, id);
}

void Outflow::refill(store::Outbox& store, const std::vector<std::uint32_t>& devices, std::size_t chunk) {
    if (!on_disk_ || backlog_.size() >= chunk / 2) return;
    const std::int64_t before = live_.empty() || live_.front().record_id == 0 ? INT64_MAX : live_.front().record_id;
    auto loaded = store.load(devices, disk_after_, before, chunk);
    if (loaded.size() < chunk) on_disk_ = false;
    for (auto& b : loaded) {
        disk_after_ = std::max(disk_after_, b.record_id);
        backlog_.push_back(std::move(b));
    }
}

std::deque<core::SampleBatch>* Outflow::next() {
    const bool use_backlog = !backlog_.empty() && (prefer_backlog_ || live_.empty());
    auto& queue = use_backlog ? backlog_ : live_;
    if (queue.empty()) return nullptr;
    prefer_backlog_ = !use_backlog;
    return &queue;
}

std::int64_t Outflow::oldest_ms() const {
    std::int64_t oldest = 0;
    for (const auto* q : {&backlog_, &live_}) {
        const std::int64_t t = q->empty() ? 0 : q->front().timestamp_ms;
        if (t && (!oldest || t < oldest)) oldest = t;
    }
    return oldest;
}

void TokenBucket::refill(TimePoint now, double rate) {
    if (rate <= 0) return;
    const double dt = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(1.0, tokens_ + dt * rate);
    last_ = now;
}

std::size_t TokenBucket::available(double rate) const {
    return rate > 0 ? static_cast<std::size_t>(std::max(0.0, tokens_)) : SIZE_MAX;
}

TimePoint TokenBucket::next_token(double rate) const {
    if (rate <= 0 || tokens_ >= 1.0) return TimePoint::max();
    const auto need = std::chrono::duration<double>((1.0 - tokens_) / rate);
    return last_ + std::chrono::duration_cast<Clock::duration>(need) + std::chrono::microseconds(1);
}

}  // namespace fieldlink::north
