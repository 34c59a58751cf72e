// At most `size` sessions connect at once (name lookup to CONNACK); the others wait their turn
// in order. Thousands of simultaneous connects overflow the server's listen backlog, and every
// dropped SYN costs its session a 1 s, then 3 s retransmission: a window connects 10,000
// sessions faster than a stampede does, and spares the server.
#pragma once

#include <cstddef>
#include <deque>

namespace fieldlink::north {

class ConnectWindow {
  public:
    class Member {
      public:
        virtual ~Member() = default;
        virtual void admitted() = 0;  // your turn (called from leave(), so: schedule, do not connect here)
    };

    explicit ConnectWindow(std::size_t size) : size_(size) {}
    // True when `m` may connect now; otherwise it waits and admitted() is called later.
    bool enter(Member* m) {
        if (inside_ < size_) {
            ++inside_;
            return true;
        }
        waiting_.push_back(m);
        return false;
    }
    // `m` connected, failed or stopped: the next one in line gets its place.
    void leave() {
        if (!waiting_.empty()) {
            Member* next = waiting_.front();
            waiting_.pop_front();
            next->admitted();  // the place passes on
            return;
        }
        if (inside_ > 0) --inside_;
    }
    // `m` stopped while waiting.
    void withdraw(Member* m) {
        for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
            if (*it == m) {
                waiting_.erase(it);
                return;
            }
        }
    }
    std::size_t inside() const { return inside_; }
    std::size_t waiting() const { return waiting_.size(); }

  private:
    std::size_t size_;
    std::size_t inside_ = 0;
    std::deque<Member*> waiting_;
};

}  // namespace fieldlink::north
