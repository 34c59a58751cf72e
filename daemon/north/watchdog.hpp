// The service manager's watchdog, from the north loop: every tick the loop sends its STATUS=
// line, with WATCHDOG=1 when systemd asked for a watchdog, unless the question `stuck` names a
// part that made no progress (a bus worker stuck in its driver). Then the pings stop and
// systemd restarts the daemon; the stretch is logged once, and its end once.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace fieldlink::north {

class Watchdog {
  public:
    using Question = std::function<std::string()>;  // "" when every part makes progress

    // `period` 0: no watchdog (STATUS= only).
    void set(std::chrono::milliseconds period, Question stuck) {
        period_ = period;
        stuck_ = std::move(stuck);
    }
    // A reload asks its own question (the new bus workers).
    void ask(Question stuck) { stuck_ = std::move(stuck); }
    // How often to tick: every second, or every half period when that is shorter.
    std::chrono::milliseconds tick_period() const;
    // What to send the service manager this tick, `status` being the STATUS= line so far.
    std::string notification(std::string status);

  private:
    std::chrono::milliseconds period_{0};
    Question stuck_;
    std::string stuck_logged_;  // what the pings stopped for, logged once
};

}  // namespace fieldlink::north
