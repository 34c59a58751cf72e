// Messages a session sent that the platform answers (OneNET thing model /reply, datapoints
// accepted|rejected, DaShi /response, on-connect requests): kept until their answer comes, so
// that they can go again. Bookkeeping only: the session decides what an answer means, publishes
// and counts; this says what is awaited, what is due and what was answered lately.
//
// A message is awaited from its PUBACK for kAnswerTimeout; a missing answer sends it again, at
// most kMaxAttempts times in all; a transient refusal sends it again after a doubling delay.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "north/loop.hpp"
#include "north/profile.hpp"

namespace fieldlink::north {

constexpr std::chrono::seconds kAnswerTimeout{30};
constexpr int kMaxAttempts = 3;

class AnswerBook {
  public:
    struct Awaiting {
        std::size_t packet = 0;  // 0: an on-connect request (no records; never sent again)
        Message message;
        int attempts = 1;
        bool delivered = false;  // PUBACKed: from now on its answer is awaited until `due`
        bool retry = false;      // to be sent again at `due`
        TimePoint due{};
    };

    // The message is (being) sent: awaited from now on, a resend keeps its attempts.
    Awaiting& sending(const Message& m, std::size_t packet);
    // Delivered (PUBACK, or sent at QoS 0): its answer is due within kAnswerTimeout.
    void delivered(Awaiting& w, TimePoint now);
    // The PUBACK of a message of `packet` awaiting answer `id` (ignored when that is no longer it).
    void acknowledged(const std::string& id, std::size_t packet, TimePoint now);
    // To be sent again at `due`.
    void again_at(Awaiting& w, TimePoint due);
    // To be sent again as soon as there is room (its answer did not come).
    void again_now(Awaiting& w, TimePoint now);
    // After a transient refusal: again after 1, 2, 4... s (at most 60 s).
    void again_later(Awaiting& w, TimePoint now);

    Awaiting* find(const std::string& id);
    // Was answered lately (a second answer to a message sent twice is not a stranger's).
    bool answered_lately(const std::string& id) const;
    // A data message's answer finished it: forgotten, remembered as answered. Returns its packet.
    std::size_t finish(const std::string& id);
    // An on-connect request forgotten (answered, failed to send, or not answered at all); its
    // message is returned for its `then`/`otherwise`.
    Message forget(const std::string& id);

    // The deadlines that have come: retries now due make retry_ready(); answers now overdue are
    // returned (their ids), for the session to send again (again_at) or give up on (finish, forget).
    std::vector<std::string> overdue(TimePoint now);
    // A message due to go again, or null when none is (and retry_ready() is then false).
    Awaiting* next_retry(TimePoint now);

    // A new connection: on-connect requests are all sent anew, and messages delivered before may
    // have lost their answer with the connection, so they go again now.
    void reconnected(TimePoint now);
    void clear();

    std::size_t data() const { return data_; }
    std::size_t gates() const { return gates_; }
    bool retry_ready() const { return retry_ready_; }
    TimePoint next_check() const { return next_check_; }

  private:
    void plan(TimePoint at) { next_check_ = std::min(next_check_, at); }

    std::unordered_map<std::string, Awaiting> awaiting_;  // answer id -> message awaiting its answer
    std::size_t data_ = 0;                                // ... of which carry records
    std::size_t gates_ = 0;                               // ... of which hold data back (topology)
    std::deque<std::string> answered_;                    // recent ids: a late duplicate answer is quiet
    TimePoint next_check_ = TimePoint::max();             // the next retry or answer deadline to come
    bool retry_ready_ = false;                            // messages due to go again wait for room
};

}  // namespace fieldlink::north
