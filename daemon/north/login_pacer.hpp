// When a session may try to connect again: within its platform's login-rate rule
// (Profile::login_limit; OneNET kicks a device that logs in more than 3 times in 5 s), after a
// capped, jittered backoff that grows with each failure, at the next address of its broker's
// name. Backoff alone is not enough: it resets after a login that succeeds and is then kicked.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "core/backoff.hpp"
#include "north/loop.hpp"
#include "north/profile.hpp"

namespace fieldlink::north {

class LoginPacer {
  public:
    explicit LoginPacer(std::chrono::milliseconds base);

    // Attempts of a previous process (Unix ms) still inside the rule's window: a daemon
    // restarted in a loop honours the rule too.
    void restore(const std::vector<std::int64_t>& earlier_unix_ms, const LoginLimit& limit, TimePoint now,
                 std::int64_t now_unix_ms);
    // When the next attempt may go (`now` when it may go now).
    TimePoint allowed_at(TimePoint now, const LoginLimit& limit);
    // An attempt is made now.
    void attempt(TimePoint now) { logins_.push_back(now); }

    // A failure: the delay before the next attempt.
    std::chrono::milliseconds failed();
    // Connected: the backoff starts over.
    void succeeded() { failures_ = 0; }
    // Failures so far are not held against the next attempt (the wall clock stepped: credentials
    // dated wrong were the cause).
    void forgive() { failures_ = 0; }
    int failures() const { return failures_; }

    // The address to try of a name's addresses; next_address() moves on after a failure there.
    const std::string& address(const std::vector<std::string>& addresses) const {
        return addresses[address_index_ % addresses.size()];
    }
    void next_address() { ++address_index_; }

  private:
    std::deque<TimePoint> logins_;  // recent attempts
    core::Backoff backoff_;
    int failures_ = 0;
    std::size_t address_index_ = 0;
};

}  // namespace fieldlink::north
