#include "low_fds.hpp"

#include <fcntl.h>
#include <sys/select.h>
#include <unistd.h>

#include <cerrno>

namespace fieldlink::core {

LowFds& LowFds::instance() {
    static LowFds reserve;
    return reserve;
}

LowFds::~LowFds() {
    for (int fd : slots_) ::close(fd);
    if (devnull_ >= 0) ::close(devnull_);
}

std::size_t LowFds::reserve(std::size_t count) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (devnull_ < 0) devnull_ = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    while (devnull_ >= 0 && slots_.size() < count) {
        const int fd = ::fcntl(devnull_, F_DUPFD_CLOEXEC, 0);  // the lowest free number
        if (fd < 0) break;
        if (fd >= FD_SETSIZE) {
            ::close(fd);
            break;
        }
        slots_.push_back(fd);
        used_.push_back(false);
    }
    return slots_.size();
}

int LowFds::place(int fd) {
    if (fd < 0 || fd < FD_SETSIZE) return fd;
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (used_[i]) continue;
        if (::dup3(fd, slots_[i], O_CLOEXEC) < 0) return -1;
        ::close(fd);
        used_[i] = true;
        return slots_[i];
    }
    errno = EMFILE;
    return -1;
}

int LowFds::release(int fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i] != fd || !used_[i]) continue;
        // The duplicate goes high when it can, so it never competes for low numbers.
        int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, FD_SETSIZE);
        if (dup < 0) dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        ::dup3(devnull_, fd, O_CLOEXEC);  // the placeholder is back; the open file lives on in `dup`
        used_[i] = false;
        return dup;  // -1 only when out of descriptors: then the file is already closed
    }
    return fd;
}

std::size_t LowFds::size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return slots_.size();
}

std::size_t LowFds::in_use() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t n = 0;
    for (bool u : used_) n += u ? 1 : 0;
    return n;
}

}  // namespace fieldlink::core
