#include "answers.hpp"

#include <algorithm>

namespace fieldlink::north {
namespace {

constexpr std::chrono::seconds kRetryCap{60};
// Answer ids kept after their answer, so that a late duplicate is not taken for a stranger.
constexpr std::size_t kAnsweredKept = 64;

}  // namespace

AnswerBook::Awaiting& AnswerBook::sending(const Message& m, std::size_t packet) {
    auto [it, fresh] = awaiting_.try_emplace(m.answer_id);
    Awaiting& w = it->second;
    if (fresh) {
        w.packet = packet;
        w.message = m;
        if (packet) ++data_;
        if (!packet && m.gate) ++gates_;
    }
    w.delivered = false;
    w.retry = false;
    return w;
}

void AnswerBook::delivered(Awaiting& w, TimePoint now) {
    w.delivered = true;
    w.due = now + kAnswerTimeout;
    plan(w.due);
}

void AnswerBook::acknowledged(const std::string& id, std::size_t packet, TimePoint now) {
    auto a = awaiting_.find(id);
    if (a == awaiting_.end() || a->second.retry || a->second.packet != packet) return;
    delivered(a->second, now);
}

void AnswerBook::again_at(Awaiting& w, TimePoint due) {
    w.delivered = false;
    w.retry = true;
    w.due = due;
    plan(due);
}

void AnswerBook::again_now(Awaiting& w, TimePoint now) {
    w.delivered = false;
    w.retry = true;
    w.due = now;
    retry_ready_ = true;
}

void AnswerBook::again_later(Awaiting& w, TimePoint now) {
    const auto delay =
        std::min<std::chrono::seconds>(kRetryCap, std::chrono::seconds(std::int64_t{1} << std::min(w.attempts - 1, 6)));
    again_at(w, now + delay);
}

AnswerBook::Awaiting* AnswerBook::find(const std::string& id) {
    auto it = awaiting_.find(id);
    return it == awaiting_.end() ? nullptr : &it->second;
}

bool AnswerBook::answered_lately(const std::string& id) const {
    return std::find(answered_.begin(), answered_.end(), id) != answered_.end();
}

std::size_t AnswerBook::finish(const std::string& id) {
    auto it = awaiting_.find(id);
    if (it == awaiting_.end()) return 0;
    const std::size_t packet = it->second.packet;
    awaiting_.erase(it);
    --data_;
    answered_.push_back(id);
    if (answered_.size() > kAnsweredKept) answered_.pop_front();
    return packet;
}

Message AnswerBook::forget(const std::string& id) {
    auto it = awaiting_.find(id);
    if (it == awaiting_.end()) return {};
    if (it->second.message.gate) --gates_;
    Message m = std::move(it->second.message);
    awaiting_.erase(it);
    return m;
}

std::vector<std::string> AnswerBook::overdue(TimePoint now) {
    next_check_ = TimePoint::max();
    std::vector<std::string> out;
    for (auto& [id, w] : awaiting_) {
        if (w.retry) {  // sent by the session once due
            if (w.due <= now) {
                retry_ready_ = true;
            } else {
                plan(w.due);
            }
            continue;
        }
        if (!w.delivered) continue;
        if (w.due > now) {
            plan(w.due);
            continue;
        }
        out.push_back(id);
    }
    return out;
}

AnswerBook::Awaiting* AnswerBook::next_retry(TimePoint now) {
    for (auto& [id, w] : awaiting_) {
        if (w.retry && w.due <= now) return &w;
    }
    retry_ready_ = false;
    return nullptr;
}

void AnswerBook::reconnected(TimePoint now) {
    gates_ = 0;
    for (auto it = awaiting_.begin(); it != awaiting_.end();) {
        if (it->second.packet == 0) {
            it = awaiting_.erase(it);
            continue;
        }
        if (it->second.delivered) {
            it->second.delivered = false;
            it->second.retry = true;
            it->second.due = now;
            retry_ready_ = true;
        }
        ++it;
    }
}

void AnswerBook::clear() {
    awaiting_.clear();
    data_ = 0;
    gates_ = 0;
    next_check_ = TimePoint::max();
}

}  // namespace fieldlink::north
