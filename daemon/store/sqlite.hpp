// SQLite statements the outbox uses, each one owned (finalized when it goes) and every call
// checked: a prepare, bind or step that fails is remembered with SQLite's message, and the
// statement then reports failure instead of running on with half its parameters.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

namespace fieldlink::store::sql {

class Statement {
  public:
    Statement() = default;  // no statement: every step fails with "not prepared"
    Statement(sqlite3* db, const std::string& sql);
    ~Statement();
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // Parameters are numbered from 1, as in the SQL (?1, ?2...). Text is copied; a blob is not
    // (it must outlive the step: payloads are the large part, and copying them is what we avoid).
    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, const std::string& text);
    Statement& bind_blob(int index, const std::string& bytes);

    // The next row of a query: true while there is one; false at the end or on an error (ok()
    // tells which). At its end, or failed, the statement is reset for its next use: error()
    // keeps the failure until that use begins (a bind or a step).
    bool next();
    // Runs a statement that returns no rows (INSERT, DELETE) to its end, resetting it for the
    // next use. True when done; false with error() otherwise.
    bool run();
    // Columns of the current row, numbered from 0.
    std::int64_t int64(int column) const;
    std::string text(int column) const;
    std::string blob(int column) const;

    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    // Clears the bindings and the error, and resets the statement for its next use.
    void reset();

  private:
    void fail(const char* doing, int rc);
    void begin_use();
    template <typename Bind>
    Statement& checked_bind(const char* what, Bind bind);

    sqlite3* db_ = nullptr;
    sqlite3_stmt* st_ = nullptr;
    std::string error_;
    bool finished_ = false;
};

// The first column of the first row of a one-value query (a PRAGMA, a COUNT), or `fallback` when
// there is no row or the query fails.
std::int64_t query_int(sqlite3* db, const std::string& sql, std::int64_t fallback = 0);

}  // namespace fieldlink::store::sql
