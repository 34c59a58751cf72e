// Which devices of a session have a unit that does not answer, and which are logged in on the
// platform during this connection (OneNET sub-device login/logout). Only a device logged in during
// this connection is logged out, and only one logged out (or whose login was held back while its
// unit did not answer) is logged in again; a login still on its way simply goes, or waits, as the
// unit's state says.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

namespace fieldlink::north {

class PresenceBook {
  public:
    // The unit of `device` stopped answering (online = false) or answers again. True when the
    // platform is to be told (a logout or a login now).
    bool change(std::uint32_t device, bool online, bool connected) {
        if (online ? offline_.erase(device) == 0 : !offline_.insert(device).second) return false;
        if (!connected) return false;  // on connect, offline devices are not logged in
        if (online ? needs_login_.erase(device) == 0 : logged_in_.erase(device) == 0) return false;
        if (!online) needs_login_.insert(device);
        return true;
    }
    // A login about to go: held back (true) while the device's unit does not answer.
    bool hold_login(std::uint32_t device) {
        if (offline_.count(device) == 0) return false;
        needs_login_.insert(device);  // logs in when its unit answers
        return true;
    }
    void logged_in(std::uint32_t device) { logged_in_.insert(device); }
    // Why a device's unit does not answer ("" once it answers again).
    void reason(std::uint32_t device, std::string why) {
        if (why.empty()) {
            reasons_.erase(device);
        } else {
            reasons_[device] = std::move(why);
        }
    }
    // Devices whose unit does not answer, with why.
    std::map<std::uint32_t, std::string> offline() const {
        std::map<std::uint32_t, std::string> out;
        for (auto d : offline_) {
            const auto it = reasons_.find(d);
            out[d] = it == reasons_.end() ? std::string() : it->second;
        }
        return out;
    }
    // A new connection: nobody is logged in yet.
    void new_connection() {
        logged_in_.clear();
        needs_login_.clear();
    }

  private:
    std::set<std::uint32_t> offline_;      // devices whose unit does not answer
    std::set<std::uint32_t> logged_in_;    // ... logged in during this connection
    std::set<std::uint32_t> needs_login_;  // ... logged out, or their login held back
    std::map<std::uint32_t, std::string> reasons_;
};

}  // namespace fieldlink::north
