// The login history: connection attempts per session, kept in the store's database so that a
// daemon restarted in a loop still honours a platform's login-rate rule (north/profile.hpp's
// LoginLimit). Attempts are recorded in memory and written (Outbox::flush_logins) in one small
// transaction per north loop turn that had any.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fieldlink::store {

class LoginLog {
  public:
    // (Bounded: while the disk refuses, the oldest unwritten attempts go first.)
    void record(const std::string& session, std::int64_t unix_ms) {
        if (pending_.size() >= kMaxPending) pending_.erase(pending_.begin());
        pending_.emplace_back(session, unix_ms);
    }
    bool empty() const { return pending_.empty(); }
    // Writes what was recorded and forgets attempts older than a minute, inside the caller's
    // transaction. False (with SQLite's `error`) when SQLite refused.
    bool write(sqlite3* db, std::string* error) const;
    // The transaction committed: what was recorded is on disk. (Until then it is kept, for the
    // next turn.)
    void written() { pending_.clear(); }
    // Every session's attempts since `since_unix_ms`, oldest first (one query, at start).
    static std::map<std::string, std::vector<std::int64_t>> recent(sqlite3* db, std::int64_t since_unix_ms);

  private:
    static constexpr std::size_t kMaxPending = 4096;
    std::vector<std::pair<std::string, std::int64_t>> pending_;
};

}  // namespace fieldlink::store
