// A write from the cloud on its way to a device and back: the north side checks it (config/
// writes.hpp) and hands it to the bus worker that owns the device; the worker writes it ahead of
// its polls, reads the points back and hands the job back with its result. Shared between the
// two threads; `state` decides who owns the outcome when the platform's deadline comes first.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/value.hpp"

namespace fieldlink::core {

struct WriteJob {
    enum State : int { queued = 0, taken = 1, expired = 2 };
    enum class Failure : std::uint8_t { none, timeout, exception, link, mismatch, refused, expired, superseded };

    // Asked for (set by the north side before submitting; read-only afterwards).
    std::uint32_t device = 0;                          // index into Config::devices
    std::vector<PointValue> values;                    // accepted values (config::accept_write), written in order
    std::chrono::steady_clock::time_point deadline{};  // not started after this
    std::uint64_t id = 0;                              // the north side's reference
    std::size_t session = 0;                           // ... and the session awaiting it
    // The command's lifetime (cloud.command_ttl): it is refused as expired, never written, when
    // the bus reaches it more than `ttl_ms` after `born_boot_ms` (core::boot_ms() of the moment
    // the platform issued it, or of its arrival when the platform gives no time). 0: no lifetime.
    std::int64_t born_boot_ms = 0;
    std::int64_t ttl_ms = 0;
    // The command sets a state (a property, an attribute, a metric) rather than asking for an
    // action: a newer one for the same points, still queued behind it, replaces it.
    bool sets_state = false;
    // A read of raw registers or bits instead of a write (remote diagnostics): `raw_count` > 0
    // reads that range of the device's unit once (area as fl_area); nothing is written.
    std::uint8_t raw_area = 0;
    std::uint16_t raw_address = 0;
    std::uint16_t raw_count = 0;

    // Claimed by the bus worker (queued -> taken) or given up by the north side at the deadline
    // (queued -> expired); whoever wins decides.
    std::atomic<int> state{queued};

    // The outcome (set by the bus worker before `done`).
    bool ok = false;
    Failure failure = Failure::none;
    std::string reason;                     // what went wrong, for the platform's failure reply
    std::vector<PointValue> read_back;      // the values read back after the write
    std::size_t written = 0;                // how many of `values` were written before a failure
    std::int64_t write_us = 0;              // time on the bus: write plus read-back
    std::vector<std::uint16_t> raw_values;  // a raw read's registers (bits as 0/1)

    // Called by the bus worker when the job is finished (on the worker's thread).
    std::function<void(std::shared_ptr<WriteJob>)> done;

    bool claim() {
        int expected = queued;
        return state.compare_exchange_strong(expected, taken);
    }
    bool expire() {
        int expected = queued;
        return state.compare_exchange_strong(expected, expired);
    }
};

using WriteJobPtr = std::shared_ptr<WriteJob>;

// Answers a job that will not be written (a reload, no worker for its device): claimed here and
// handed back with `why`, unless the north side already gave up on it.
inline void refuse(const WriteJobPtr& job, std::string why, WriteJob::Failure failure = WriteJob::Failure::refused) {
    if (!job->claim()) return;
    job->ok = false;
    job->failure = failure;
    job->reason = std::move(why);
    if (job->done) job->done(job);
}

}  // namespace fieldlink::core
