// What the disk refuses now, in one line for /healthz, /metrics and STATUS=: the store that could
// not be opened at start, the store's writes, the status files. Set on the north thread, read
// from any (thread-safe).
#pragma once

#include <mutex>
#include <string>

namespace fieldlink::north {

class DiskTrouble {
  public:
    // The store could not be opened at start: the daemon runs without it until restarted.
    void store_unopened(std::string why) { store_unopened_ = std::move(why); }
    // Why the status files could not be written, "" once they are: false when nothing changed.
    bool status_files(const std::string& why);
    const std::string& status_files() const { return status_files_; }
    // The line again, with the store's own trouble ("" when it writes, or there is no store).
    void update(const std::string& store_cannot_write);
    std::string text() const;

  private:
    std::string store_unopened_;
    std::string status_files_;
    mutable std::mutex mutex_;
    std::string text_;  // guarded by mutex_
};

}  // namespace fieldlink::north
