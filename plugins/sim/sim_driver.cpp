// Simulated Modbus device for demos and tests: deterministic registers, no I/O.
//
// Register areas: value(unit, addr) = (unit * 100 + addr + reads) & 0xFFFF, where `reads` counts
// the reads of that unit, so every poll sees new values. Bit areas: (addr + reads) % 2.
// Written values override the pattern until the instance is destroyed.
#include <fieldlink/driver.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <thread>

namespace {

struct Sim {
    long latency_ms = 0;
    long seed = 0;
    std::map<int, unsigned long> reads;     // unit -> read count
    std::map<long, std::uint16_t> written;  // (unit, area, addr) -> value
};

long key(int unit, int area, int addr) {
    return (static_cast<long>(unit) << 24) | (area << 16) | addr;
}

const char* const kNames[] = {"sim", nullptr};
const fl_option_v2 kOptions[] = {
    {sizeof(fl_option_v2),
     FL_OPT_DURATION,
     "latency",
     "0",
     "simulated response time per request",
     nullptr,
     0,
     10000,
     nullptr,
     {}},
    {sizeof(fl_option_v2), FL_OPT_INT, "seed", "0", "added to every register value", nullptr, 0, 65535, nullptr, {}},
};

void set_err(fl_error_v2* err, unsigned kind, const char* msg) {
    if (!err) return;
    err->kind = kind;
    std::snprintf(err->message, sizeof err->message, "%s", msg);
}

fl_status sim_create(const char*, const fl_kv_v2* opts, size_t n, const fl_host_v2*, void** handle, fl_error_v2* err) {
    auto* s = new (std::nothrow) Sim();
    if (!s) {
        set_err(err, FL_ERRK_OTHER, "out of memory");
        return FL_ERROR;
    }
    for (size_t i = 0; i < n; ++i) {
        const fl_kv_v2* kv = fl_kv_at(opts, i);
        if (std::strcmp(kv->key, "latency") == 0) s->latency_ms = std::atol(kv->value);
        if (std::strcmp(kv->key, "seed") == 0) s->seed = std::atol(kv->value);
    }
    *handle = s;
    return FL_OK;
}

fl_status sim_open(void*, fl_error_v2*) {
    return FL_OK;
}

fl_status sim_read(void* h, fl_read_v2* req, fl_error_v2* err) {
    auto* s = static_cast<Sim*>(h);
    if (s->latency_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(s->latency_ms));
    if (static_cast<unsigned>(req->address) + req->count > 65536u) {
        set_err(err, FL_ERRK_EXCEPTION, "illegal data address");
        err->code = 2;
        return FL_ERROR;
    }
    const unsigned long reads = s->reads[req->unit]++;
    for (unsigned i = 0; i < req->count; ++i) {
        const int addr = req->address + static_cast<int>(i);
        auto w = s->written.find(key(req->unit, req->area, addr));
        if (req->area == FL_AREA_COIL || req->area == FL_AREA_DISCRETE) {
            req->bits[i] =
                w != s->written.end() ? static_cast<uint8_t>(w->second != 0) : static_cast<uint8_t>((addr + reads) % 2);
        } else {
            req->registers[i] = w != s->written.end()
                                    ? w->second
                                    : static_cast<uint16_t>((req->unit * 100UL + addr + reads + s->seed) & 0xFFFF);
        }
    }
    return FL_OK;
}

fl_status sim_write(void* h, const fl_write_v2* req, fl_error_v2* err) {
    auto* s = static_cast<Sim*>(h);
    if (req->area != FL_AREA_COIL && req->area != FL_AREA_HOLDING) {
        set_err(err, FL_ERRK_EXCEPTION, "area is read-only");
        err->code = 1;
        return FL_ERROR;
    }
    for (unsigned i = 0; i < req->count; ++i) {
        uint16_t v = req->area == FL_AREA_COIL ? req->bits[i] : req->registers[i];
        s->written[key(req->unit, req->area, req->address + static_cast<int>(i))] = v;
    }
    return FL_OK;
}

void sim_interrupt(void*) {}
void sim_close(void*) {}
void sim_destroy(void* h) {
    delete static_cast<Sim*>(h);
}

// No wire: a request costs its simulated latency, like a fast Ethernet device.
fl_status sim_bus_model(const char*, const fl_kv_v2*, size_t, fl_bus_model_v2* out, fl_error_v2*) {
    out->flags = 0;
    out->request_overhead_us = 20;
    out->register_us = 2;
    out->bit_us = 0.25;
    out->max_registers = 125;
    out->max_bits = 2000;
    out->unit_min = 0;
    out->unit_max = 255;
    return FL_OK;
}

const fl_driver_v2 kTable = {sizeof(fl_driver_v2),
                             FL_DRIVER_ABI_V2,
                             "sim",
                             "0.2.0",
                             kNames,
                             kOptions,
                             sizeof kOptions / sizeof kOptions[0],
                             sim_bus_model,
                             sim_create,
                             sim_open,
                             sim_read,
                             sim_write,
                             sim_interrupt,
                             sim_close,
                             sim_destroy,
                             nullptr,
                             nullptr,
                             {}};

}  // namespace

extern "C" const fl_driver_v2* fl_sim_driver_table(void) {
    return &kTable;
}
