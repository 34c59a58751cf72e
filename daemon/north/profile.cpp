#include "profile.hpp"

#include <algorithm>

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
        if (d.cloud_index == cloud_index) out.push_back(SessionInfo{&cfg, &cloud_, &d, {i}, d.name, make_state()});
    }
    return out;
}

std::vector<SessionInfo> Profile::one_session(const config::Config& cfg, std::size_t cloud_index) const {
    SessionInfo s{&cfg, &cloud_, nullptr, {}, cloud_.name, make_state()};
    for (std::uint32_t i = 0; i < cfg.devices.size(); ++i) {
        if (cfg.devices[i].cloud_index == cloud_index) s.devices.push_back(i);
    }
    if (s.devices.empty()) return {};
    return {std::move(s)};
}

Inbound Profile::write_or_refuse(const SessionInfo& s, Inbound in, Command c, const config::DeviceConfig* device,
                                 bool ok, const std::string& what, const std::string& why) const {
    if (!ok || !device || c.values.empty()) {
        in.refused = true;
        in.problem = what + " refused: " + why;
        if (auto m = command_reply(s, c, CommandResult{false, why, {}}); !m.topic.empty()) {
            in.replies.push_back(std::move(m));
        }
        return in;
    }
    c.device = static_cast<std::uint32_t>(device - s.cfg->devices.data());
    in.write = std::move(c);
    return in;
}

Inbound Profile::on_message(const SessionInfo&, const std::string&, const std::string&, const LatestValues&,
                            std::uint32_t&) const {
    Inbound in;
    in.kind = "unexpected";
    in.problem = "message on a topic this platform does not use";
    return in;
}

std::size_t fit_batches(std::size_t most, std::size_t limit, const std::function<std::string(std::size_t)>& render,
                        std::string& payload) {
    // From one batch up: each guess assumes the bytes per batch seen so far (payloads grow about
    // linearly), so a backlog of thousands is never rendered whole; a handful of renders at most.
    std::size_t best = 1;
    payload = render(1);
    if (payload.size() > limit || most <= 1) return 1;
    std::size_t too_many = most + 1;  // the smallest count known not to fit
    for (int round = 0; round < 8; ++round) {
        std::size_t guess = best * limit / std::max<std::size_t>(1, payload.size());
        guess = std::min(std::max(guess, best + 1), std::min(most, too_many - 1));
        if (guess <= best) break;
        std::string candidate = render(guess);
        if (candidate.size() <= limit) {
            best = guess;
            payload = std::move(candidate);
            if (best == most || payload.size() >= limit - limit / 16) break;  // full enough
        } else {
            too_many = guess;
        }
    }
    return best;
}

namespace {

void split_into(const core::SampleBatch& b, std::size_t from, std::size_t to, std::size_t limit,
                const std::function<std::string(const core::SampleBatch&)>& render,
                std::vector<core::SampleBatch>& out) {
    core::SampleBatch part;
    part.device_index = b.device_index;
    part.timestamp_ms = b.timestamp_ms;
    part.record_id = b.record_id;
    part.values.assign(b.values.begin() + static_cast<std::ptrdiff_t>(from),
                       b.values.begin() + static_cast<std::ptrdiff_t>(to));
    if (to - from <= 1 || render(part).size() <= limit) {
        out.push_back(std::move(part));
        return;
    }
    const std::size_t mid = from + (to - from) / 2;
    split_into(b, from, mid, limit, render, out);
    split_into(b, mid, to, limit, render, out);
}

}  // namespace

std::vector<core::SampleBatch> split_values(const core::SampleBatch& b, std::size_t limit,
                                            const std::function<std::string(const core::SampleBatch&)>& render) {
    std::vector<core::SampleBatch> out;
    split_into(b, 0, b.values.size(), limit, render, out);
    return out;
}

}  // namespace fieldlink::north
