// What a session has to send, and how fast it may. The data: the newest batches in memory (a
// bounded window) and older ones loaded from the store in chunks, oldest first; packets come from
// the two in turn, so a long backlog never starves live data. The pace: a token bucket of
// capacity 1 for a platform's message rate.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "core/value.hpp"
#include "north/loop.hpp"
#include "store/outbox.hpp"

namespace fieldlink::north {

class Outflow {
  public:
    // `durable`: the store may hold batches of this session from before (it is read at start).
    explicit Outflow(bool durable) : on_disk_(durable) {}

    struct Pushed {
        std::size_t samples_dropped = 0;  // the window was full and the oldest had no record
        bool first_drop = false;          // ... for the first time (worth one log line)
    };
    // A new batch. With the window full the oldest leaves memory: back to the store's backlog when
    // it has a record there (it comes back in order), else it is dropped.
    Pushed push(core::SampleBatch&& batch, std::size_t window, bool durable);
    // Forgets queued batches the store dropped (record ids up to `id`).
    void forget_through(std::int64_t id);
    // Loads the next chunk of the backlog from the store when less than half a chunk is left.
    void refill(store::Outbox& store, const std::vector<std::uint32_t>& devices, std::size_t chunk);
    // Everything in memory is let go and read again from the store, from its oldest record (a new
    // client: what was in flight goes again).
    void reread_from_store() {
        live_.clear();
        backlog_.clear();
        disk_after_ = 0;
        on_disk_ = true;
    }
    // The queue the next packet comes from (backlog and live data in turn); null: none waits.
    std::deque<core::SampleBatch>* next();

    bool waiting() const { return !live_.empty() || !backlog_.empty() || on_disk_; }
    std::size_t in_memory() const { return live_.size() + backlog_.size(); }
    // Acquisition time of the oldest batch waiting in memory (0: none).
    std::int64_t oldest_ms() const;

  private:
    std::deque<core::SampleBatch> live_;
    std::deque<core::SampleBatch> backlog_;
    bool on_disk_ = false;         // the store may hold older batches not yet loaded
    std::int64_t disk_after_ = 0;  // newest record id loaded into backlog_
    bool prefer_backlog_ = false;
    bool dropping_ = false;
};

// Capacity 1: no bursts, so no window of any length ever sees more than rate x length + 1
// messages. Empty at start: a process restarted at once (kill -9, crash, upgrade) cannot know when
// the previous one last published, so its first message waits one interval like any other. A
// rate of 0 is no limit.
class TokenBucket {
  public:
    void start(TimePoint now) { last_ = now; }
    void refill(TimePoint now, double rate);
    // Whole messages that may go now (SIZE_MAX without a rate).
    std::size_t available(double rate) const;
    void take(double rate) {
        if (rate > 0) tokens_ -= 1.0;
    }
    // When the next message may go, once every token is spent (TimePoint::max(): no rate).
    TimePoint next_token(double rate) const;

  private:
    double tokens_ = 0.0;
    TimePoint last_{};
};

}  // namespace fieldlink::north
