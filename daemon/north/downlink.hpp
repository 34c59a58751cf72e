// Writes from the platform on their way to a bus worker and back. Each is answered exactly once:
// by its result, or by its deadline, whichever comes first. The job may wait behind the request
// in progress on its bus (a unit timing out holds a serial line for its response timeout): if
// the bus has not started it by 60% of the platform's deadline it is withdrawn and refused,
// never written late; one started and not confirmed just before the deadline is answered as
// unconfirmed. The session turns each answer into the platform's reply.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "core/write_job.hpp"
#include "north/loop.hpp"
#include "north/profile.hpp"

namespace fieldlink::north {

class Downlink {
  public:
    // A write answered: the command as the platform sent it, how it ended, when it came.
    struct Answer {
        Command command;
        CommandResult result;
        TimePoint received{};
        std::vector<std::uint16_t> registers{};  // a diagnostics read's values (bits as 0/1)
    };

    // Takes a write: its job, for the bus worker, marked with the session's number, with its
    // lifetime (`ttl_ms` from `born_boot_ms`, core/write_job.hpp).
    core::WriteJobPtr start(Command&& c, TimePoint now, Clock::duration deadline, std::size_t session,
                            std::int64_t born_boot_ms = 0, std::int64_t ttl_ms = 0);
    // A write that cannot start (no bus runs its device, expired on arrival): its answer at once.
    static Answer refuse(Command&& c, TimePoint now, const std::string& why,
                         core::WriteJob::Failure failure = core::WriteJob::Failure::refused);
    // A job the bus finished: its answer, or none when its deadline answered it already.
    std::optional<Answer> done(const core::WriteJob& job);
    // Writes whose deadline has passed: answered as not written, or as unconfirmed.
    std::vector<Answer> expired(TimePoint now);
    // When expired() next has something to answer (TimePoint::max(): nothing pending).
    TimePoint next_check() const;
    std::size_t pending() const { return writes_.size(); }
    // Every write not yet started is withdrawn (the connection is gone: its reply could not go,
    // and the platform gives up); none is answered.
    void withdraw_all();

  private:
    struct Pending {
        Command command;
        core::WriteJobPtr job;
        TimePoint received{};
        TimePoint give_up{};  // not started by the bus by then: refused, never written
        TimePoint hard{};     // started but unconfirmed by then: failure replied before the platform's deadline
    };
    std::map<std::uint64_t, Pending> writes_;
    std::uint64_t next_write_ = 1;
};

}  // namespace fieldlink::north
