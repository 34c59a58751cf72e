#include "loop.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace fieldlink::north {

void TimerHeap::schedule(TimerHandler* t, TimePoint when) {
    if (t->timer_armed && t->timer_due == when) return;
    if (!t->timer_armed) ++armed_;
    t->timer_armed = true;
    t->timer_due = when;
    t->timer_generation = next_generation_++;
    heap_.push(Entry{when, t->timer_generation, t});
    if (heap_.size() > 64 && heap_.size() > 4 * armed_) compact();  // mostly stale entries
}

void TimerHeap::compact() {
    std::vector<Entry> live;
    while (!heap_.empty()) {
        const Entry e = heap_.top();
        heap_.pop();
        if (e.timer->timer_armed && e.timer->timer_generation == e.generation) live.push_back(e);
    }
    for (const auto& e : live) heap_.push(e);
}

void TimerHeap::cancel(TimerHandler* t) {
    if (!t->timer_armed) return;
    t->timer_armed = false;
    --armed_;
}

void TimerHeap::drop_stale() {
    while (!heap_.empty()) {
        const Entry& e = heap_.top();
        if (e.timer->timer_armed && e.timer->timer_generation == e.generation) return;
        heap_.pop();
    }
}

TimePoint TimerHeap::next() {
    drop_stale();
    return heap_.empty() ? TimePoint::max() : heap_.top().when;
}

void TimerHeap::fire_due(TimePoint now) {
    // Timers re-armed while firing for a time <= now wait for the next call (no starvation).
    std::vector<TimerHandler*> due;
    for (drop_stale(); !heap_.empty() && heap_.top().when <= now; drop_stale()) {
        TimerHandler* t = heap_.top().timer;
        heap_.pop();
        t->timer_armed = false;
        --armed_;
        due.push_back(t);
    }
    for (auto* t : due) t->on_timer(now);
}

EpollLoop::EpollLoop() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}

EpollLoop::~EpollLoop() {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void EpollLoop::watch(int fd, std::uint32_t events, IoHandler* handler) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = handler;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void EpollLoop::unwatch(int fd) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

std::int64_t EpollLoop::unix_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void EpollLoop::run_once(std::chrono::milliseconds max_wait) {
    const TimePoint start = Clock::now();
    const TimePoint next = timers_.next();
    auto wait = max_wait;
    if (next != TimePoint::max()) {
        // Round up: waking a millisecond late beats spinning on a timer that is not due yet.
        const auto until = std::chrono::ceil<std::chrono::milliseconds>(next - start);
        wait = std::max(std::chrono::milliseconds(0), std::min(wait, until));
    }
    epoll_event events[256];
    const int n = epoll_wait(epoll_fd_, events, 256, static_cast<int>(wait.count()));
    for (int i = 0; i < n; ++i) static_cast<IoHandler*>(events[i].data.ptr)->on_io(events[i].events);
    timers_.fire_due(Clock::now());
}

}  // namespace fieldlink::north
