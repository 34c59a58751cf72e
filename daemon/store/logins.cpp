#include "logins.hpp"

#include <algorithm>

#include "store/sqlite.hpp"

namespace fieldlink::store {

bool LoginLog::flush(sqlite3* db, std::string* error) {
    if (pending_.empty()) return true;
    if (sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
        *error = sqlite3_errmsg(db);
        return false;
    }
    sql::Statement add(db, "INSERT INTO logins(session, at) VALUES (?1, ?2)");
    std::int64_t newest = 0;
    bool ok = true;
    for (const auto& [session, at] : pending_) {
        ok = add.bind(1, session).bind(2, at).run();
        if (!ok) break;
        newest = std::max(newest, at);
    }
    sql::Statement forget(db, "DELETE FROM logins WHERE at < ?1");
    if (ok) ok = forget.bind(1, newest - 60'000).run();
    if (ok && sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK) {
        pending_.clear();
        return true;
    }
    *error = !add.ok() ? add.error() : !forget.ok() ? forget.error() : sqlite3_errmsg(db);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return false;
}

std::map<std::string, std::vector<std::int64_t>> LoginLog::recent(sqlite3* db, std::int64_t since_unix_ms) {
    std::map<std::string, std::vector<std::int64_t>> out;
    sql::Statement st(db, "SELECT session, at FROM logins WHERE at >= ?1 ORDER BY at");
    st.bind(1, since_unix_ms);
    while (st.next()) out[st.text(0)].push_back(st.int64(1));
    return out;
}

}  // namespace fieldlink::store
