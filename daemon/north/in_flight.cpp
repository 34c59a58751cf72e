#include "in_flight.hpp"

namespace fieldlink::north {

std::size_t InFlightBook::add_packet(std::size_t messages, std::vector<RecordRef> records, std::int64_t oldest_ms) {
    const std::size_t id = next_packet_++;
    packets_[id] = Packet{messages, std::move(records), oldest_ms, false};
    return id;
}

std::optional<InFlightBook::Mid> InFlightBook::acknowledged(int mid) {
    auto it = mids_.find(mid);
    if (it == mids_.end()) return std::nullopt;
    Mid m = std::move(it->second);
    mids_.erase(it);
    return m;
}

std::vector<RecordRef> InFlightBook::finish_message(std::size_t packet) {
    auto p = packets_.find(packet);
    if (p == packets_.end() || --p->second.messages > 0) return {};
    std::vector<RecordRef> records = std::move(p->second.records);
    packets_.erase(p);
    return records;
}

std::size_t InFlightBook::reject(std::size_t packet, const std::string& reason) {
    auto p = packets_.find(packet);
    if (p == packets_.end() || p->second.rejected) return 0;
    p->second.rejected = true;
    for (const auto& r : p->second.records) ++rejected_[{r.device, reason}];
    return p->second.records.size();
}

std::int64_t InFlightBook::oldest_ms() const {
    std::int64_t oldest = 0;
    for (const auto& [id, p] : packets_) {
        if (p.oldest_ms && (!oldest || p.oldest_ms < oldest)) oldest = p.oldest_ms;
    }
    return oldest;
}

}  // namespace fieldlink::north
