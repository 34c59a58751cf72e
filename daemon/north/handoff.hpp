// One task handed from another thread to the north loop's thread (a reload): posted from any
// thread, run by the loop between two of its turns.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>

namespace fieldlink::north {

class Handoff {
  public:
    // From any thread; the poster wakes the loop itself.
    void post(std::function<void()> task) {
        const std::lock_guard<std::mutex> lock(mutex_);
        task_ = std::move(task);
        pending_.store(true);
    }
    bool pending() const { return pending_.load(); }
    // On the loop's thread.
    void run() {
        std::function<void()> task;
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            task.swap(task_);
            pending_.store(false);
        }
        if (task) task();
    }

  private:
    std::mutex mutex_;
    std::function<void()> task_;  // guarded by mutex_
    std::atomic<bool> pending_{false};
};

}  // namespace fieldlink::north
