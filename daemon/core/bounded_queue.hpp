// Multi-producer queue with a fixed capacity and an eventfd that becomes readable when items
// are waiting, so the consumer can sit in epoll.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

namespace fieldlink::core {

template <typename T>
class BoundedQueue {
  public:
    explicit BoundedQueue(std::size_t capacity) : capacity_(capacity), fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
    ~BoundedQueue() {
        if (fd_ >= 0) ::close(fd_);
    }
    BoundedQueue(const BoundedQueue&) = delete;
    BoundedQueue& operator=(const BoundedQueue&) = delete;

    // Returns false (and leaves `item` untouched) when full.
    bool push(T&& item) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (items_.size() >= capacity_) return false;
            items_.push_back(std::move(item));
        }
        std::uint64_t one = 1;
        (void)!::write(fd_, &one, sizeof one);
        return true;
    }

    // Moves as many of `items` as fit (from the front), with one wake-up of the consumer.
    // Returns how many were taken; the rest stay in `items`.
    std::size_t push_all(std::vector<T>& items) {
        std::size_t n = 0;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            while (n < items.size() && items_.size() < capacity_) items_.push_back(std::move(items[n++]));
        }
        if (n > 0) {
            std::uint64_t one = 1;
            (void)!::write(fd_, &one, sizeof one);
        }
        items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(n));
        return n;
    }

    // Clears the eventfd (the consumer will drain later).
    void clear_signal() {
        std::uint64_t n = 0;
        (void)!::read(fd_, &n, sizeof n);
    }

    // Moves everything waiting into `out` and clears the eventfd.
    void drain(std::deque<T>& out) {
        clear_signal();
        std::lock_guard<std::mutex> lock(mutex_);
        while (!items_.empty()) {
            out.push_back(std::move(items_.front()));
            items_.pop_front();
        }
    }

    int fd() const { return fd_; }

  private:
    std::size_t capacity_;
    int fd_;
    std::mutex mutex_;
    std::deque<T> items_;
};

}  // namespace fieldlink::core
