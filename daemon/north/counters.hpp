// A session's counters, declared once: the struct and the table status.json, /metrics and the
// stop line are generated from (core/figures.hpp). A new counter is one field and one row.
#pragma once

#include <array>
#include <cstdint>

#include "core/figures.hpp"

namespace fieldlink::north {

struct SessionCounters {
    std::uint64_t messages_sent = 0;
    std::uint64_t messages_acked = 0;
    std::uint64_t samples_sent = 0;
    std::uint64_t samples_dropped = 0;         // not stored and pushed out of memory
    std::uint64_t samples_dropped_budget = 0;  // of its devices, dropped by the store's budget (filled in when shown)
    std::uint64_t commands = 0;                // platform requests answered
    std::uint64_t commands_refused = 0;        // ... with a failure code
    std::uint64_t malformed = 0;               // unreadable platform messages
    std::uint64_t error_replies = 0;           // our requests answered with an error code
    std::uint64_t unexpected = 0;              // messages on topics the profile does not use
    std::uint64_t answers_retried = 0;         // messages sent again: a transient answer, or none in time
    std::uint64_t records_rejected = 0;        // records the platform refused for good (dropped, counted)
    std::uint64_t answers_unknown = 0;         // answers naming no request of ours (never finish anything)
    std::uint64_t answers_missing = 0;         // messages whose answer did not come in time
    std::uint64_t values_superseded = 0;       // left out: the platform keeps one value per stream and second
    std::uint64_t writes_ok = 0;               // writes from the platform written and read back
    std::uint64_t writes_failed = 0;           // ... that failed on the bus, read back otherwise or timed out
    std::uint64_t connects = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t resolve_failures = 0;
};

// One row of a session's figures; `plus`: a field added to the metric's value (what a session
// dropped in memory and what the store's budget dropped of its devices make one family).
struct SessionFigure : core::Figure<SessionCounters> {
    std::uint64_t SessionCounters::*plus = nullptr;
};

namespace figures {
using C = SessionCounters;
using core::MetricType;
constexpr auto kCounter = MetricType::counter;
inline constexpr std::array<SessionFigure, 20> kSession = {{
    {{&C::messages_sent, "", "", "", kCounter, "", "messages sent"}},
    {{&C::messages_acked, "messages_acked", "", "", kCounter, "", "acknowledged"}},
    {{&C::samples_sent, "samples_sent", "fieldlink_samples_sent_total", "", kCounter,
      "Samples published to the platform (QoS 1).", "samples sent"}},
    {{&C::samples_dropped, "samples_dropped_memory", "fieldlink_samples_dropped_total", "", kCounter,
      "Samples dropped: not stored and pushed out of memory, or dropped by the store's budget.", "dropped"},
     &C::samples_dropped_budget},
    {{&C::samples_dropped_budget, "samples_dropped_budget", "", "", kCounter, "", ""}},
    {{&C::commands, "commands", "fieldlink_platform_requests_total", "", kCounter,
      "Requests from the platform answered (commands, writes, property gets).", "platform requests answered"}},
    {{&C::commands_refused, "commands_refused", "fieldlink_commands_refused_total", "", kCounter,
      "Requests from the platform answered with a failure code.", "refused"}},
    {{&C::malformed, "malformed", "fieldlink_malformed_messages_total", "", kCounter,
      "Messages from the platform that could not be read.", "malformed"}},
    {{&C::error_replies, "error_replies", "", "", kCounter, "", "error replies"}},
    {{&C::unexpected, "", "", "", kCounter, "", "unexpected"}},
    {{&C::answers_retried, "answers_retried", "fieldlink_messages_retried_total", "", kCounter,
      "Messages sent again: a transient answer from the platform, or none in time.", "messages sent again"}},
    {{&C::records_rejected, "records_rejected", "fieldlink_records_rejected_total", "", kCounter,
      "Stored records the platform refused for good (dropped).", "records refused by the platform"}},
    {{&C::answers_unknown, "answers_unknown", "", "", kCounter, "", "answers to unknown requests"}},
    {{&C::answers_missing, "answers_missing", "fieldlink_answers_missing_total", "", kCounter,
      "Messages whose answer from the platform did not come in time.", "answers missing"}},
    {{&C::values_superseded, "values_superseded", "fieldlink_values_superseded_total", "", kCounter,
      "Values left out: the platform keeps one value per stream and second.", "values superseded within their second"}},
    {{&C::writes_ok, "writes_ok", "fieldlink_writes_total", "result=\"ok\"", kCounter,
      "Writes from the platform, by result (ok: written and read back).", "writes done"}},
    {{&C::writes_failed, "writes_failed", "fieldlink_writes_total", "result=\"failed\"", kCounter, "",
      "writes failed"}},
    {{&C::connects, "", "fieldlink_connects_total", "", kCounter, "Connections to the platform made.", ""}},
    {{&C::connect_failures, "connect_failures", "fieldlink_connect_failures_total", "", kCounter,
      "Connection attempts that failed (refused, timed out, CONNACK refused).", ""}},
    {{&C::resolve_failures, "resolve_failures", "fieldlink_resolve_failures_total", "", kCounter,
      "Host name lookups of the platform's address that failed.", ""}},
}};
}  // namespace figures

}  // namespace fieldlink::north
