// What a session (and its connection) uses of its surroundings: the north loop's parts in the
// daemon, fakes in unit tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/write_job.hpp"
#include "north/connect_window.hpp"
#include "north/counters.hpp"
#include "north/loop.hpp"
#include "north/profile.hpp"
#include "north/resolver.hpp"
#include "north/transport.hpp"
#include "store/audit.hpp"
#include "store/outbox.hpp"

namespace fieldlink::north {

struct SessionEnv {
    Loop* loop = nullptr;
    Resolver* resolver = nullptr;
    TransportFactory make_transport;
    store::Outbox* store = nullptr;     // null: samples are not durable (store: memory, tests)
    SessionCounters* totals = nullptr;  // sums over all sessions (optional)
    std::size_t* connected = nullptr;   // sessions connected now (optional)
    ConnectWindow* window = nullptr;    // at most so many connecting at once (optional)
    std::size_t memory_window = 2000;   // newest batches kept in memory while they wait
    std::size_t backlog_chunk = 500;    // older batches loaded from the store at a time
    // Login attempts of a previous process, Unix ms (crash loops must still honour the rule).
    std::vector<std::int64_t> earlier_logins;
    // Hands a write to the bus worker owning its device; the result comes back through
    // Session::write_done on the loop's thread. Unset: writes are answered as impossible.
    std::function<void(core::WriteJobPtr)> submit_write;
    std::size_t index = 0;  // this session's number (never reused), carried by its write jobs
    // Every write, refusal and expiry is recorded here (optional).
    store::AuditLog* audit = nullptr;
    // Whether the wall clock can be trusted with a platform's request times (unset: it can).
    std::function<bool()> clock_trusted;
    // Where a configuration pushed on the cloud's channel goes (the daemon's main thread), with
    // the cloud's name; unset: pushes are ignored. The report of the last push (null: none) is
    // sent by the channel session after each CONNECT.
    std::function<void(const std::string&, ConfigPush)> submit_config;
    const ConfigReport* config_report = nullptr;
    // The bus statistics as JSON (diagnostics; unset: none).
    std::function<std::string()> bus_stats;
};

}  // namespace fieldlink::north
