#include "write_returns.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace fieldlink::north {

WriteReturns::~WriteReturns() {
    if (fd_ >= 0) ::close(fd_);
}

bool WriteReturns::open() {
    fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd_ >= 0;
}

void WriteReturns::hand_back(core::WriteJobPtr job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        finished_.push_back(std::move(job));
    }
    const std::uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof one);
}

std::vector<core::WriteJobPtr> WriteReturns::take() {
    std::uint64_t n = 0;
    (void)!::read(fd_, &n, sizeof n);
    std::vector<core::WriteJobPtr> done;
    std::lock_guard<std::mutex> lock(mutex_);
    done.swap(finished_);
    return done;
}

}  // namespace fieldlink::north
