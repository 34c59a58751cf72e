#include "downlink.hpp"

#include <algorithm>
#include <utility>

namespace fieldlink::north {

core::WriteJobPtr Downlink::start(Command&& c, TimePoint now, Clock::duration deadline, std::size_t session,
                                  std::int64_t born_boot_ms, std::int64_t ttl_ms) {
    Pending w;
    w.received = now;
    w.give_up = now + deadline * 6 / 10;
    w.hard = now + deadline - std::min<Clock::duration>(deadline / 10, std::chrono::milliseconds(300));
    w.job = std::make_shared<core::WriteJob>();
    w.job->device = c.device;
    w.job->values = c.values;
    w.job->id = next_write_++;
    w.job->session = session;
    w.job->born_boot_ms = born_boot_ms;
    w.job->ttl_ms = ttl_ms;
    w.job->sets_state = c.sets_state;
    w.job->raw_area = c.raw_area;
    w.job->raw_address = c.raw_address;
    w.job->raw_count = c.raw_count;
    w.job->deadline = std::chrono::steady_clock::now() + (w.give_up - now);
    w.command = std::move(c);
    auto job = w.job;
    writes_.emplace(job->id, std::move(w));
    return job;
}

Downlink::Answer Downlink::refuse(Command&& c, TimePoint now, const std::string& why, core::WriteJob::Failure failure) {
    return Answer{std::move(c), CommandResult{false, why, {}, failure}, now};
}

std::optional<Downlink::Answer> Downlink::done(const core::WriteJob& job) {
    auto it = writes_.find(job.id);
    if (it == writes_.end()) return std::nullopt;
    Answer a{std::move(it->second.command), CommandResult{job.ok, job.reason, job.read_back, job.failure},
             it->second.received, job.raw_values};
    writes_.erase(it);
    return a;
}

std::vector<Downlink::Answer> Downlink::expired(TimePoint now) {
    std::vector<Answer> out;
    for (auto it = writes_.begin(); it != writes_.end();) {
        auto& w = it->second;
        if (now >= w.give_up && w.job->expire()) {
            out.push_back({std::move(w.command),
                           CommandResult{false,
                                         "timeout: the bus did not reach the write in time (busy, or waiting for a "
                                         "unit that does not answer); nothing was written",
                                         {},
                                         core::WriteJob::Failure::timeout},
                           w.received});
        } else if (now >= w.hard) {
            out.push_back(
                {std::move(w.command),
                 CommandResult{false,
                               "timeout: the device did not confirm the write in time; it may have been applied",
                               {},
                               core::WriteJob::Failure::timeout},
                 w.received});
        } else {
            ++it;
            continue;
        }
        it = writes_.erase(it);
    }
    return out;
}

void Downlink::withdraw_all() {
    for (auto& [id, w] : writes_) w.job->expire();
    writes_.clear();
}

TimePoint Downlink::next_check() const {
    TimePoint next = TimePoint::max();
    for (const auto& [id, w] : writes_) {
        next = std::min(next, w.job->state.load() == core::WriteJob::queued ? w.give_up : w.hard);
    }
    return next;
}

}  // namespace fieldlink::north
