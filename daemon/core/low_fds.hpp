// Descriptor numbers reserved below FD_SETSIZE for libraries that wait with select() (libmodbus,
// on TCP and RTU alike): glibc aborts ("bit out of range 0 - FD_SETSIZE on fd_set") when such a
// library is handed descriptor 1024 or above, and thousands of cloud sessions take the low numbers
// long before a bus reconnects. The reserve holds placeholder descriptors (on /dev/null) at low
// numbers; place() swaps a real descriptor into one atomically (dup3), release() swaps the
// placeholder back, so a reserved number is never free for another thread to take.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

namespace fieldlink::core {

class LowFds {
  public:
    // The process-wide reserve (descriptor numbers are process-wide).
    static LowFds& instance();

    LowFds() = default;
    ~LowFds();
    LowFds(const LowFds&) = delete;
    LowFds& operator=(const LowFds&) = delete;

    // Grows the reserve to at least `count` numbers below FD_SETSIZE. Returns how many it holds
    // (fewer when the low numbers are already taken: the caller says so).
    std::size_t reserve(std::size_t count);
    // Moves `fd` (closing it) into a free reserved number and returns that number; a descriptor
    // already below FD_SETSIZE is returned unchanged. -1 with errno EMFILE when none is free (the
    // caller still owns `fd`).
    int place(int fd);
    // For a reserved number in use: returns a duplicate for the caller to close (the reserved
    // number holds its placeholder again). Any other descriptor is returned unchanged.
    int release(int fd);

    std::size_t size() const;
    std::size_t in_use() const;

  private:
    mutable std::mutex mutex_;
    int devnull_ = -1;
    std::vector<int> slots_;
    std::vector<bool> used_;
};

}  // namespace fieldlink::core
