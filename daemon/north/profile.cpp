#include "profile.hpp"

namespace fieldlink::north {

core::SampleBatch take_front(std::deque<core::SampleBatch>& pending, Packet& p) {
    core::SampleBatch b = std::move(pending.front());
    pending.pop_front();
    if (b.record_id != 0) p.records.push_back(RecordRef{b.device_index, b.record_id});
    p.samples += b.values.size();
    if (p.oldest_ms == 0 || b.timestamp_ms < p.oldest_ms) p.oldest_ms = b.timestamp_ms;
    return b;
}

void take_at(std::deque<core::SampleBatch>& pending, const std::vector<std::size_t>& indices, Packet& p) {
    std::deque<core::SampleBatch> rest;
    std::size_t next = 0;
    for (std::size_t i = 0; i < pending.size(); ++i) {
        if (next < indices.size() && indices[next] == i) {
            ++next;
            std::deque<core::SampleBatch> one;
            one.push_back(std::move(pending[i]));
            take_front(one, p);
        } else {
            rest.push_back(std::move(pending[i]));
        }
    }
    pending.swap(rest);
}

std::vector<SessionInfo> Profile::sessions(const config::Config& cfg, std::size_t cloud_index) const {
    std::vector<SessionInfo> out;
    for (std::uint32_t i = 0; i < cfg.devices.size(); ++i) {
        const auto& d = cfg.devices[i];
        if (d.cloud_index == cloud_index) out.push_back(SessionInfo{&cfg, &cloud_, &d, {i}, d.name});
    }
    return out;
}

Inbound Profile::on_message(const SessionInfo&, const std::string&, const std::string&, const LatestValues&) const {
    Inbound in;
    in.kind = "unexpected";
    in.problem = "message on a topic this platform does not use";
    return in;
}

std::size_t batches_within_budget(const std::deque<core::SampleBatch>& pending, std::size_t limit) {
    std::size_t n = 0, values = 0;
    for (const auto& b : pending) {
        if (n == limit || (n > 0 && values + b.values.size() > kMaxValuesPerMessage)) break;
        values += b.values.size();
        ++n;
    }
    return n;
}

}  // namespace fieldlink::north
