// One fieldlinkd per data_dir: an exclusive lock on <data_dir>/fieldlinkd.lock, held for as long
// as the daemon runs with that directory, with the holder's PID written in it. A second daemon on
// the same directory would share its outbox and steal its MQTT client ids.
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace fieldlink::core {

// Makes data_dir (0750, its missing parents too); false with `error` when it cannot be made or is
// not a directory.
bool make_data_dir(const std::string& dir, std::string* error);

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
