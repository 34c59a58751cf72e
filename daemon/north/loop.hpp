// What sessions and the resolver need of an event loop: watching descriptors, one pending
// wake-up time per timer, and the clocks. EpollLoop is the real one (epoll plus a timer heap:
// the cost of timers follows what is due, not how many sessions exist); unit tests drive
// sessions with a fake loop and a fake clock.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

namespace fieldlink::north {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

class IoHandler {
  public:
    virtual ~IoHandler() = default;
    virtual void on_io(std::uint32_t epoll_events) = 0;
};

class TimerHandler {
  public:
    virtual ~TimerHandler() = default;
    virtual void on_timer(TimePoint now) = 0;

    // Bookkeeping of the loop that holds this timer (one pending time at most).
    TimePoint timer_due{};
    std::uint64_t timer_generation = 0;
    bool timer_armed = false;
};

class Loop {
  public:
    virtual ~Loop() = default;
    // Adds or changes the watch of `fd` (EPOLLIN, EPOLLOUT, ...).
    virtual void watch(int fd, std::uint32_t events, IoHandler* handler) = 0;
    virtual void unwatch(int fd) = 0;
    // (Re)arms `t` for `when`, replacing any earlier time; cancel() disarms it.
    virtual void schedule(TimerHandler* t, TimePoint when) = 0;
    virtual void cancel(TimerHandler* t) = 0;
    // Timers are deleted lazily: a cancelled timer's entries stay until they surface. Before
    // handlers are destroyed while the loop goes on (sessions a reload replaces), cancel their
    // timers and call this, so that no entry points at them any more.
    virtual void drop_cancelled() {}
    virtual TimePoint now() const = 0;
    virtual std::int64_t unix_ms() const = 0;
};

// The timer heap shared by the real and the fake loop: lazy deletion (a re-armed timer leaves
// its old entry behind, skipped when it surfaces), compacted when stale entries dominate.
// A handler's watch on one descriptor kept in step with what it wants (the descriptor may change,
// as an MQTT client's socket does on reconnect), without a system call when nothing changed.
class SocketWatch {
  public:
    // Watches `fd` (for writing too when `want_write`); -1: no socket, no watch.
    void sync(Loop& loop, IoHandler* handler, int fd, bool want_write) {
        if (fd != fd_) clear(loop);
        if (fd < 0) return;
        const std::uint32_t want = EPOLLIN | (want_write ? static_cast<std::uint32_t>(EPOLLOUT) : 0U);
        if (fd == fd_ && want == events_) return;
        loop.watch(fd, want, handler);
        fd_ = fd;
        events_ = want;
    }
    // Out of the loop before the descriptor is closed (its number may be reused at once).
    void clear(Loop& loop) {
        if (fd_ >= 0) loop.unwatch(fd_);
        fd_ = -1;
        events_ = 0;
    }

  private:
    int fd_ = -1;
    std::uint32_t events_ = 0;
};

class TimerHeap {
  public:
    void schedule(TimerHandler* t, TimePoint when);
    void cancel(TimerHandler* t);
    // Rebuilds the heap from the armed timers' current entries only.
    void compact();
    // The earliest armed time, or nullopt-like max() when none.
    TimePoint next();
    // Fires every timer due at or before `now` (each at most once per call).
    void fire_due(TimePoint now);
    std::size_t armed() const { return armed_; }

  private:
    struct Entry {
        TimePoint when{};
        std::uint64_t generation = 0;
        TimerHandler* timer = nullptr;
        bool operator>(const Entry& o) const { return when > o.when; }
    };
    void drop_stale();
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
    std::uint64_t next_generation_ = 1;
    std::size_t armed_ = 0;
};

class EpollLoop final : public Loop {
  public:
    EpollLoop();
    ~EpollLoop() override;
    EpollLoop(const EpollLoop&) = delete;
    EpollLoop& operator=(const EpollLoop&) = delete;

    bool ok() const { return epoll_fd_ >= 0; }
    void watch(int fd, std::uint32_t events, IoHandler* handler) override;
    void unwatch(int fd) override;
    void schedule(TimerHandler* t, TimePoint when) override { timers_.schedule(t, when); }
    void cancel(TimerHandler* t) override { timers_.cancel(t); }
    void drop_cancelled() override { timers_.compact(); }
    TimePoint now() const override { return Clock::now(); }
    std::int64_t unix_ms() const override;
    // Waits for I/O or the next timer (at most `max_wait`), then dispatches.
    void run_once(std::chrono::milliseconds max_wait);
    std::size_t timers_armed() const { return timers_.armed(); }

  private:
    int epoll_fd_ = -1;
    TimerHeap timers_;
};

}  // namespace fieldlink::north
