// Tasks handed from other threads to the north loop's thread (a reload, a configuration
// report): posted from any thread, run in order by the loop between two of its turns.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace fieldlink::north {

class Handoff {
  public:
    // From any thread; the poster wakes the loop itself.
    void post(std::function<void()> task) {
        const std::lock_guard<std::mutex> lock(mutex_);
        tasks_.push_back(std::move(task));
        pending_.store(true);
    }
    bool pending() const { return pending_.load(); }
    // On the loop's thread.
    void run() {
        std::vector<std::function<void()>> tasks;
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            tasks.swap(tasks_);
            pending_.store(false);
        }
        for (auto& task : tasks) {
            if (task) task();
        }
    }

  private:
    std::mutex mutex_;
    std::vector<std::function<void()>> tasks_;  // guarded by mutex_
    std::atomic<bool> pending_{false};
};

}  // namespace fieldlink::north
