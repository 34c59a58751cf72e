#include "logins.hpp"

#include <algorithm>

#include "store/sqlite.hpp"

namespace fieldlink::store {

bool LoginLog::write(sqlite3* db, std::string* error) const {
    sql::Statement add(db, "INSERT INTO logins(session, at) VALUES (?1, ?2)");
    std::int64_t newest = 0;
    for (const auto& [session, at] : pending_) {
        if (!add.bind(1, session).bind(2, at).run()) {
            *error = add.error();
            return false;
        }
        newest = std::max(newest, at);
    }
    sql::Statement forget(db, "DELETE FROM logins WHERE at < ?1");
    if (forget.bind(1, newest - 60'000).run()) return true;
    *error = forget.error();
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
