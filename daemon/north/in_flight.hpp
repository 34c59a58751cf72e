// What a session has sent and not yet seen finished: its packets (the store records each
// carries) and the MQTT messages awaiting PUBACK. A packet's records are deleted from the store
// only once every one of its messages is finished (by PUBACK, or by the platform's answer); one
// the platform refuses for good is counted per device and reason, once.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "north/profile.hpp"

namespace fieldlink::north {

class InFlightBook {
  public:
    // A message awaiting PUBACK: its packet (0: none) and the answer it awaits after ("": none).
    struct Mid {
        std::size_t packet = 0;
        std::string answer_id;
    };
    using Rejected = std::map<std::pair<std::uint32_t, std::string>, std::uint64_t>;

    // A packet of `messages` messages carrying `records`; its number.
    std::size_t add_packet(std::size_t messages, std::vector<RecordRef> records, std::int64_t oldest_ms);
    // A message went out as `mid` (QoS 1).
    void sent(int mid, std::size_t packet, const std::string& answer_id) { mids_[mid] = Mid{packet, answer_id}; }
    // Its PUBACK: what it was, or none when it is not ours (any more).
    std::optional<Mid> acknowledged(int mid);
    // One message of `packet` is finished: the packet's records once all of them are (else none).
    std::vector<RecordRef> finish_message(std::size_t packet);
    // The platform refused `packet` for good: how many records are dropped now (0 when it was
    // counted already, or is not known).
    std::size_t reject(std::size_t packet, const std::string& reason);
    // A new client: what was in flight is sent again from the store.
    void clear() {
        packets_.clear();
        mids_.clear();
    }

    std::size_t messages() const { return mids_.size(); }
    // Acquisition time of the oldest sample in flight (0: none).
    std::int64_t oldest_ms() const;
    // Records refused for good, per (device index, the platform's reason).
    const Rejected& rejected() const { return rejected_; }

  private:
    struct Packet {
        std::size_t messages = 0;  // messages of this packet not yet finished
        std::vector<RecordRef> records;
        std::int64_t oldest_ms = 0;
        bool rejected = false;  // counted once, however many of its messages were refused
    };
    std::unordered_map<std::size_t, Packet> packets_;
    std::unordered_map<int, Mid> mids_;  // QoS 1 mid awaiting PUBACK
    std::size_t next_packet_ = 1;
    Rejected rejected_;
};

}  // namespace fieldlink::north
