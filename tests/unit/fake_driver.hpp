// The unit tests' one fake driver (the fixtures are in helpers.hpp).
//
// FakeLine ("fake" in a configuration) is a Modbus-like line held in memory whose behaviour each
// test sets: units that never answer, units that answer with an exception, a script of register
// snapshots played one per read, reads that block until the host interrupts them, a device that
// acknowledges writes without applying them. Its state is global (the driver ABI is C) and every
// WorkerRig (helpers.hpp) starts it afresh.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fieldlink/driver.h"

namespace fieldlink::test {

struct FakeLine {
    // What the driver says of its bus (fl_bus_model_v2): a 9600-baud-like shared line, or a fast
    // link (TCP-like, no per-request cost to speak of).
    enum class Timing { serial, fast };

    std::mutex m;
    std::map<int, std::uint16_t> regs;  // address -> value; unset: the address itself (or 0, see below)
    std::map<int, std::uint8_t> bits;
    bool unset_reads_address = true;
    std::set<int> dead_units;                 // never answer (timeout)
    std::map<int, int> exception_units;       // answer every request with this exception code
    std::map<int, int> refused_writes;        // a write at this address: this exception code
    std::vector<std::vector<int>> script;     // one step per read (registers from 0); a step {-1}: no answer
    std::vector<std::pair<int, int>> writes;  // (address, count) in order
    std::map<int, int> reads;                 // per unit
    std::atomic<bool> dead{false};            // no unit answers
    std::atomic<bool> stubborn{false};        // writes acknowledged, not applied
    std::atomic<int> step{0};                 // script steps played
    // Reads block until the host interrupts them (stop()), then fail as a link shut under them.
    bool block_reads = false;
    bool interrupted = false;
    std::atomic<int> blocked_reads{0};
    std::condition_variable cv;
    Timing timing = Timing::fast;

    int reads_of(int unit) {
        std::lock_guard<std::mutex> lock(m);
        return reads[unit];
    }
    std::size_t steps() const { return script.size(); }
};

inline FakeLine& fake_line() {
    static FakeLine line;
    return line;
}

// Starts the line afresh (called by WorkerRig before its configuration is loaded).
inline void reset_fake_line(FakeLine::Timing timing) {
    auto& l = fake_line();
    std::lock_guard<std::mutex> lock(l.m);
    l.regs.clear();
    l.bits.clear();
    l.unset_reads_address = true;
    l.dead_units.clear();
    l.exception_units.clear();
    l.refused_writes.clear();
    l.script.clear();
    l.writes.clear();
    l.reads.clear();
    l.dead = false;
    l.stubborn = false;
    l.step = 0;
    l.block_reads = false;
    l.interrupted = false;
    l.blocked_reads = 0;
    l.timing = timing;
}

namespace fake_driver_detail {

inline fl_status create(const char*, const fl_kv_v2*, size_t, const fl_host_v2*, void** h, fl_error_v2*) {
    *h = &fake_line();
    return FL_OK;
}

inline fl_status model(const char*, const fl_kv_v2*, size_t, fl_bus_model_v2* m, fl_error_v2*) {
    const bool serial = fake_line().timing == FakeLine::Timing::serial;
    m->flags = serial ? FL_BUS_SHARED_LINE : 0;
    m->request_overhead_us = serial ? 20000 : 20;
    m->register_us = serial ? 2000 : 2;
    m->bit_us = serial ? 250 : 1;
    m->max_registers = 125;
    m->max_bits = 2000;
    m->unit_min = serial ? 1 : 0;
    m->unit_max = serial ? 247 : 255;
    return FL_OK;
}

inline fl_status no_answer(fl_error_v2* e) {
    e->kind = FL_ERRK_TIMEOUT;
    std::snprintf(e->message, sizeof e->message, "no response within the timeout");
    return FL_RETRY;
}

inline fl_status exception(fl_error_v2* e, int code) {
    e->kind = FL_ERRK_EXCEPTION;
    e->code = code;
    return FL_ERROR;
}

inline fl_status blocked(FakeLine& l, std::unique_lock<std::mutex>& lock, fl_error_v2* e) {
    ++l.blocked_reads;
    l.cv.wait(lock, [&l] { return l.interrupted; });
    e->kind = FL_ERRK_LINK;
    return FL_RETRY;
}

inline fl_status read(void*, fl_read_v2* r, fl_error_v2* e) {
    auto& l = fake_line();
    std::unique_lock<std::mutex> lock(l.m);
    ++l.reads[r->unit];
    if (l.block_reads) return blocked(l, lock, e);
    if (l.dead || l.dead_units.count(r->unit)) return no_answer(e);
    if (auto x = l.exception_units.find(r->unit); x != l.exception_units.end()) return exception(e, x->second);
    if (!l.script.empty()) {  // one step per read; the last step holds
        const auto& s = l.script[std::min<std::size_t>(static_cast<std::size_t>(l.step.load()), l.script.size() - 1)];
        ++l.step;
        if (s.empty() || s[0] < 0) return no_answer(e);
        for (unsigned i = 0; i < r->count; ++i) r->registers[i] = static_cast<uint16_t>(s.at(r->address + i));
        return FL_OK;
    }
    for (unsigned i = 0; i < r->count; ++i) {
        const int a = static_cast<int>(r->address + i);
        if (r->area == FL_AREA_COIL || r->area == FL_AREA_DISCRETE) {
            r->bits[i] = l.bits[a];
        } else {
            auto v = l.regs.find(a);
            r->registers[i] = v != l.regs.end() ? v->second : static_cast<uint16_t>(l.unset_reads_address ? a : 0);
        }
    }
    return FL_OK;
}

inline fl_status write(void*, const fl_write_v2* w, fl_error_v2* e) {
    auto& l = fake_line();
    std::lock_guard<std::mutex> lock(l.m);
    if (l.dead || l.dead_units.count(w->unit)) return no_answer(e);
    if (auto x = l.refused_writes.find(static_cast<int>(w->address)); x != l.refused_writes.end()) {
        return exception(e, x->second);
    }
    l.writes.emplace_back(w->address, w->count);
    if (l.stubborn) return FL_OK;
    for (unsigned i = 0; i < w->count; ++i) {
        const int a = static_cast<int>(w->address + i);
        if (w->area == FL_AREA_COIL) {
            l.bits[a] = w->bits[i];
        } else {
            l.regs[a] = w->registers[i];
        }
    }
    return FL_OK;
}

inline void interrupt(void*) {
    auto& l = fake_line();
    std::lock_guard<std::mutex> lock(l.m);
    l.interrupted = true;
    l.cv.notify_all();
}

inline const char* const kNames[] = {"fake", nullptr};

}  // namespace fake_driver_detail

inline const fl_driver_v2* fake_driver() {
    namespace d = fake_driver_detail;
    static const fl_driver_v2 table = {sizeof(fl_driver_v2),
                                       FL_DRIVER_ABI_V2,
                                       "fake",
                                       "1",
                                       d::kNames,
                                       nullptr,
                                       0,
                                       d::model,
                                       d::create,
                                       nullptr,
                                       d::read,
                                       d::write,
                                       d::interrupt,
                                       nullptr,
                                       nullptr,
                                       nullptr,
                                       nullptr,
                                       {}};
    return &table;
}

}  // namespace fieldlink::test
