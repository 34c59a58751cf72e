#include "sqlite.hpp"

#include <utility>

namespace fieldlink::store::sql {

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db) {
    const int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &st_, nullptr);
    if (rc != SQLITE_OK) {
        fail("preparing", rc);
        sqlite3_finalize(st_);
        st_ = nullptr;
    }
}

Statement::~Statement() {
    sqlite3_finalize(st_);
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      st_(std::exchange(other.st_, nullptr)),
      error_(std::move(other.error_)),
      finished_(other.finished_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
    if (this != &other) {
        sqlite3_finalize(st_);
        db_ = other.db_;
        st_ = std::exchange(other.st_, nullptr);
        error_ = std::move(other.error_);
        finished_ = other.finished_;
    }
    return *this;
}

void Statement::fail(const char* doing, int rc) {
    if (!error_.empty()) return;  // the first failure is the one that explains the others
    error_ = std::string(doing) + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    if (st_ != nullptr) error_ += " (in " + std::string(sqlite3_sql(st_)).substr(0, 60) + ")";
}

// A statement that finished (its end, or a failure) starts its next use clean. One that never
// prepared keeps saying so.
void Statement::begin_use() {
    if (finished_ && st_ != nullptr) error_.clear();
    finished_ = false;
}

// Every bind: the use begins, and SQLite's answer is checked (`bind` calls sqlite3_bind_*).
template <typename Bind>
Statement& Statement::checked_bind(const char* what, Bind bind) {
    begin_use();
    if (st_ == nullptr) return *this;
    if (const int rc = bind(st_); rc != SQLITE_OK) fail(what, rc);
    return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
    return checked_bind("binding a number", [&](sqlite3_stmt* st) { return sqlite3_bind_int64(st, index, value); });
}

Statement& Statement::bind(int index, const std::string& text) {
    return checked_bind("binding a text", [&](sqlite3_stmt* st) {
        return sqlite3_bind_text(st, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    });
}

Statement& Statement::bind_blob(int index, const std::string& bytes) {
    return checked_bind("binding a blob", [&](sqlite3_stmt* st) {
        return sqlite3_bind_blob(st, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
    });
}

bool Statement::next() {
    begin_use();
    if (st_ == nullptr) {
        if (error_.empty()) error_ = "not prepared";
        finished_ = true;
        return false;
    }
    // (After a bind that failed it is not run with a parameter missing.)
    const int rc = error_.empty() ? sqlite3_step(st_) : SQLITE_MISUSE;
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail("running", rc);
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
    finished_ = true;
    return false;
}

bool Statement::run() {
    while (next()) {
    }
    return ok();
}

std::int64_t Statement::int64(int column) const {
    return sqlite3_column_int64(st_, column);
}

std::string Statement::text(int column) const {
    const auto* p = sqlite3_column_text(st_, column);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(st_, column)))
             : std::string();
}

std::string Statement::blob(int column) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, column));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, column))) : std::string();
}

void Statement::reset() {
    finished_ = false;
    if (st_ == nullptr) return;
    error_.clear();
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
}

std::int64_t query_int(sqlite3* db, const std::string& sql, std::int64_t fallback) {
    Statement st(db, sql);
    if (!st.next()) return fallback;
    const std::int64_t v = st.int64(0);
    st.reset();
    return v;
}

}  // namespace fieldlink::store::sql
