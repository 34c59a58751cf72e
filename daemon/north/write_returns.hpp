// The way back of writes from the bus workers to the north thread: a worker hands a finished job
// back from its own thread (hand_back), an eventfd wakes the loop, and the north thread takes
// every finished job at once (take) and gives each to its session.
#pragma once

#include <mutex>
#include <vector>

#include "core/write_job.hpp"

namespace fieldlink::north {

class WriteReturns {
  public:
    WriteReturns() = default;
    ~WriteReturns();
    WriteReturns(const WriteReturns&) = delete;
    WriteReturns& operator=(const WriteReturns&) = delete;

    // Makes the eventfd; false (errno set) when it cannot.
    bool open();
    // For the loop to watch (readable: jobs are waiting).
    int fd() const { return fd_; }
    // Any thread: a job is finished.
    void hand_back(core::WriteJobPtr job);
    // The north thread: every finished job, in the order they came back.
    std::vector<core::WriteJobPtr> take();

  private:
    int fd_ = -1;
    std::mutex mutex_;
    std::vector<core::WriteJobPtr> finished_;  // guarded by mutex_
};

}  // namespace fieldlink::north
