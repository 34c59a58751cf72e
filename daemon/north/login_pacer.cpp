#include "login_pacer.hpp"

namespace fieldlink::north {
namespace {

constexpr std::chrono::seconds kReconnectCap{60};

}  // namespace

LoginPacer::LoginPacer(std::chrono::milliseconds base) : backoff_(base, kReconnectCap, core::Backoff::Jitter::full) {}

void LoginPacer::restore(const std::vector<std::int64_t>& earlier_unix_ms, const LoginLimit& limit, TimePoint now,
                         std::int64_t now_unix_ms) {
    const std::int64_t window_ms = limit.window.count();
    for (auto at : earlier_unix_ms) {
        if (at > now_unix_ms - window_ms) logins_.push_back(now - std::chrono::milliseconds(now_unix_ms - at));
    }
}

TimePoint LoginPacer::allowed_at(TimePoint now, const LoginLimit& limit) {
    while (!logins_.empty() && logins_.front() <= now - limit.window) logins_.pop_front();
    return logins_.size() < limit.logins ? now : logins_.front() + limit.window + std::chrono::milliseconds(50);
}

std::chrono::milliseconds LoginPacer::failed() {
    ++failures_;
    return backoff_.next(failures_);
}

}  // namespace fieldlink::north
