// One fieldlinkd per data_dir: an exclusive lock on <data_dir>/fieldlinkd.lock, held for as long
// as the daemon runs with that directory, with the holder's PID written in it. A second daemon on
// the same directory would share its outbox and steal its MQTT client ids.
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace fieldlink::core {

class DirLock {
  public:
    // Takes the lock, waiting up to `wait` for a holder to let go (a previous instance still
    // stopping). nullptr with `error` naming the holder's PID, or what else failed. On a
    // read-only file system: a lock that holds nothing, and `error` says so (a warning).
    static std::unique_ptr<DirLock> acquire(const std::string& dir, std::chrono::milliseconds wait, std::string* error);
    ~DirLock();
    DirLock(const DirLock&) = delete;
    DirLock& operator=(const DirLock&) = delete;

  private:
    explicit DirLock(int fd) : fd_(fd) {}
    int fd_;
};

}  // namespace fieldlink::core
