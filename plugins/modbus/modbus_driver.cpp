// Modbus driver on libmodbus: modbus-rtu (serial line), modbus-tcp, and modbus-rtu-over-tcp
// (serial-to-Ethernet converters, 4G DTUs: RTU frames with CRC carried over a TCP stream).
//
// RTU over TCP uses libmodbus's own RTU framing and CRC: an RTU context whose file descriptor is a
// TCP socket we connect ourselves (modbus_set_socket), so no framing code is written here.
//
// libmodbus waits with select() (connect, receive; TCP and RTU), which aborts the process for a
// descriptor numbered FD_SETSIZE or above. So TCP connections are made here (non-blocking connect
// bounded with poll()), and every descriptor handed to libmodbus first goes through the host's
// fd_low() into a number reserved below FD_SETSIZE; it is given back with fd_release().
//
// RTU line timing (libmodbus sends a request as soon as it is asked): every request on an RTU
// line waits until the line has been quiet for 3.5 characters since the previous transaction
// ended (1.75 ms above 19200 baud, as the serial line specification fixes it), and, when it
// addresses another unit than the previous request, for `unit_switch_delay` (slow devices that
// need a pause after a neighbour answered).
//
// Answers on a serial line (RTU, and RTU through a converter) are matched, not assumed: libmodbus
// sends the request and receives frames (framing, CRC), and a frame is taken as the answer only
// when it comes from the unit asked, with the function asked and the byte count asked (a write's
// echo must repeat the address and value or quantity). Any other frame (another unit, another
// master, an answer to an earlier request that came after its timeout) is discarded, counted as
// `mismatched_replies`, and the wait goes on until the timeout. After a timeout nothing is sent
// until the line has been quiet for the response timeout once more: a unit that answers late would
// otherwise have its answer taken for the next request's, and every later answer one behind.
// Bytes that come then, or are waiting when a request is about to go, are read and discarded,
// counted as `late_replies`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fieldlink/driver.h>
#include <modbus/modbus.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

namespace {

enum class Mode { rtu, tcp, rtu_over_tcp };

struct Link {
    Mode mode = Mode::tcp;
    std::string device;
    int baud = 9600;
    char parity = 'N';
    int data_bits = 8;
    int stop_bits = 1;
    std::string host;
    int port = 502;
    long timeout_ms = 300;
    modbus_t* ctx = nullptr;
    bool connected = false;
    std::atomic<int> fd{-1};
    std::atomic<bool> interrupted{false};
    const fl_host_v2* services = nullptr;  // the host's (descriptors below FD_SETSIZE)
    // RTU line timing
    std::chrono::microseconds silence{0};            // 3.5 characters
    std::chrono::microseconds unit_switch_delay{0};  // before a request to another unit
    std::chrono::steady_clock::time_point quiet_since{};
    int last_unit = -1;
    // What only the driver sees (fl_driver_v2::counters).
    std::atomic<std::uint64_t> late_replies{0};        // answers that came after their timeout
    std::atomic<std::uint64_t> mismatched_replies{0};  // frames that did not answer the request
    std::atomic<std::uint64_t> discarded_bytes{0};     // bytes read and thrown away to keep in step

    bool serial() const { return mode != Mode::tcp; }
};

const char* const kNames[] = {"modbus-rtu", "modbus-tcp", "modbus-rtu-over-tcp", nullptr};
const fl_option_v2 kOptions[] = {
    {sizeof(fl_option_v2),
     FL_OPT_STRING,
     "device",
     nullptr,
     "serial device, e.g. /dev/ttyUSB0",
     nullptr,
     0,
     0,
     "modbus-rtu",
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_INT,
     "baud",
     "9600",
     "line speed in bit/s",
     nullptr,
     300,
     4000000,
     "modbus-rtu modbus-rtu-over-tcp",
     {}},
    {sizeof(fl_option_v2), FL_OPT_ENUM, "parity", "none", "parity bit", "none|even|odd", 0, 0, "modbus-rtu", {}},
    {sizeof(fl_option_v2), FL_OPT_INT, "data_bits", "8", "data bits per character", nullptr, 5, 8, "modbus-rtu", {}},
    {sizeof(fl_option_v2), FL_OPT_INT, "stop_bits", "1", "stop bits per character", nullptr, 1, 2, "modbus-rtu", {}},
    {sizeof(fl_option_v2),
     FL_OPT_STRING,
     "host",
     nullptr,
     "IP address or host name of the device or converter",
     nullptr,
     0,
     0,
     "modbus-tcp modbus-rtu-over-tcp",
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_INT,
     "port",
     "502",
     "TCP port",
     nullptr,
     1,
     65535,
     "modbus-tcp modbus-rtu-over-tcp",
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_DURATION,
     "unit_switch_delay",
     "0",
     "pause before a request to another unit than the previous one (slow devices on a shared line)",
     nullptr,
     0,
     1000,
     "modbus-rtu modbus-rtu-over-tcp",
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_DURATION,
     "timeout",
     "300",
     "response timeout per request",
     nullptr,
     10,
     60000,
     nullptr,
     {}},
};

void set_err(fl_error_v2* err, unsigned kind, int code, const char* fmt, const char* detail) {
    if (!err) return;
    err->kind = kind;
    err->code = code;
    std::snprintf(err->message, sizeof err->message, fmt, detail);
}

const char* opt(const fl_kv_v2* opts, size_t n, const char* key, const char* def) {
    for (size_t i = 0; i < n; ++i) {
        const fl_kv_v2* kv = fl_kv_at(opts, i);
        if (std::strcmp(kv->key, key) == 0) return kv->value;
    }
    return def;
}

int fd_low(const Link* l, int fd) {
    return l->services && l->services->fd_low ? l->services->fd_low(l->services->ctx, fd) : fd;
}
int fd_release(const Link* l, int fd) {
    return l->services && l->services->fd_release ? l->services->fd_release(l->services->ctx, fd) : fd;
}

void disconnect(Link* l) {
    if (l->ctx) {
        // The reserved low number goes back to the host first; libmodbus closes the duplicate
        // (restoring the serial line's settings on RTU).
        const int s = modbus_get_socket(l->ctx);
        if (s >= 0) modbus_set_socket(l->ctx, fd_release(l, s));
        modbus_close(l->ctx);
        modbus_free(l->ctx);
        l->ctx = nullptr;
    }
    l->connected = false;
    l->fd.store(-1);
}

// Non-blocking connect bounded by the response timeout.
int tcp_connect(const Link* l, fl_error_v2* err) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(l->port);
    if (getaddrinfo(l->host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
        set_err(err, FL_ERRK_LINK, 0, "cannot resolve host %s", l->host.c_str());  // (on the bus thread, not the loop)
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = fd < 0 ? -1 : connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (fd >= 0 && rc < 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        rc = poll(&p, 1, static_cast<int>(l->timeout_ms)) == 1 ? 0 : -1;
        int soerr = rc == 0 ? 0 : ETIMEDOUT;
        socklen_t len = sizeof soerr;
        if (rc == 0) getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        errno = soerr;
        rc = soerr == 0 ? 0 : -1;
    }
    if (rc < 0) {
        const int e = errno;
        if (err) {
            err->kind = FL_ERRK_LINK;
            err->code = e;
            std::snprintf(err->message, sizeof err->message, "cannot connect to %s:%d: %s", l->host.c_str(), l->port,
                          std::strerror(e));
        }
        if (fd >= 0) close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

fl_status mb_open(void* h, fl_error_v2* err) {
    auto* l = static_cast<Link*>(h);
    if (l->connected) return FL_OK;
    disconnect(l);
    l->ctx = l->mode == Mode::rtu   ? modbus_new_rtu(l->device.c_str(), l->baud, l->parity, l->data_bits, l->stop_bits)
             : l->mode == Mode::tcp ? modbus_new_tcp_pi(l->host.c_str(), std::to_string(l->port).c_str())
                                    : modbus_new_rtu("/dev/null", l->baud, 'N', 8, 1);  // device unused: fd set below
    if (!l->ctx) {
        set_err(err, FL_ERRK_OTHER, errno, "cannot create libmodbus context: %s", modbus_strerror(errno));
        return FL_ERROR;
    }
    const auto sec = static_cast<uint32_t>(l->timeout_ms / 1000);
    const auto usec = static_cast<uint32_t>((l->timeout_ms % 1000) * 1000);
    modbus_set_response_timeout(l->ctx, sec, usec);
    modbus_set_error_recovery(l->ctx, MODBUS_ERROR_RECOVERY_NONE);
    int fd = -1;
    if (l->mode == Mode::rtu) {
        // Opening a serial port does not select(); only the link it returns must be low.
        if (modbus_connect(l->ctx) != 0) {
            const int e = errno;
            if (err) {
                err->kind = FL_ERRK_LINK;
                err->code = e;
                std::snprintf(err->message, sizeof err->message, "cannot open %s: %s", l->device.c_str(),
                              modbus_strerror(e));
            }
            disconnect(l);
            return FL_RETRY;
        }
        fd = modbus_get_socket(l->ctx);
        modbus_set_socket(l->ctx, -1);  // ours until it is placed
    } else {
        fd = tcp_connect(l, err);
        if (fd < 0) {
            disconnect(l);
            return FL_RETRY;
        }
    }
    const int low = fd_low(l, fd);
    if (low < 0) {
        set_err(err, FL_ERRK_LINK, EMFILE, "no descriptor number below FD_SETSIZE is free for libmodbus (%s)",
                "every reserved number is in use");
        close(fd);
        disconnect(l);
        return FL_RETRY;
    }
    modbus_set_socket(l->ctx, low);
    l->fd.store(low);
    l->connected = true;
    return FL_OK;
}

using Clock = std::chrono::steady_clock;

// Reads and throws away what arrives on the line until it has been quiet for `quiet` (at most
// `limit` in all, and no longer once interrupted). Returns the bytes discarded and when the first
// of them came. Only serial modes: libmodbus keeps no buffer of its own on them, so what is read
// here is gone from the line.
struct Drained {
    std::size_t bytes = 0;
    Clock::time_point first{};
};
Drained drain(Link* l, Clock::duration quiet, Clock::duration limit) {
    Drained d;
    const int fd = l->ctx ? modbus_get_socket(l->ctx) : -1;
    if (fd < 0) return d;
    const auto start = Clock::now();
    auto last = start;
    unsigned char buf[256];
    for (;;) {
        const auto now = Clock::now();
        const auto until = std::min(last + quiet, start + limit);
        if (now >= until || l->interrupted.load()) break;
        // A slice of at most 100 ms, so that stop() is not kept waiting by a long timeout.
        const auto wait = std::min<Clock::duration>(until - now, std::chrono::milliseconds(100));
        pollfd p{fd, POLLIN, 0};
        const int r = poll(&p, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == 0) continue;
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;  // the link is gone: the next request finds out
        if (d.bytes == 0) d.first = Clock::now();
        d.bytes += static_cast<std::size_t>(n);
        last = Clock::now();
    }
    l->discarded_bytes += d.bytes;
    return d;
}

// The bytes already waiting on a serial line before a request goes (an answer to an earlier
// request that came later than its drain): read and discarded without waiting.
void discard_waiting(Link* l) {
    const int fd = modbus_get_socket(l->ctx);
    pollfd p{fd, POLLIN, 0};
    if (fd < 0 || poll(&p, 1, 0) != 1) return;
    // Something is on the line already: it and the rest of it, until 3.5 characters of quiet.
    if (drain(l, l->silence, std::chrono::milliseconds(l->timeout_ms)).bytes > 0) ++l->late_replies;
}

// After a timeout on a serial line: the unit may still answer. Nothing is sent until the line has
// been quiet for the response timeout once more; what comes in that time is a late answer,
// discarded and counted. Appends to the error message when one came, and how late.
void wait_out_late_reply(Link* l, Clock::time_point sent, fl_error_v2* err) {
    const auto timeout = std::chrono::milliseconds(l->timeout_ms);
    const Drained d = drain(l, timeout, 3 * timeout);
    if (d.bytes == 0) return;
    ++l->late_replies;
    if (!err) return;
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(d.first - sent).count();
    std::snprintf(err->message, sizeof err->message,
                  "no response within the timeout (%ld ms); an answer came %lld ms after the request and was "
                  "discarded: raise the bus's timeout",
                  l->timeout_ms, static_cast<long long>(late));
}

// Maps errno after a failed libmodbus call to a status; drops the link where it is unusable.
// `sent` is when the request went (serial modes wait out a late answer after a timeout).
fl_status classify(Link* l, Clock::time_point sent, fl_error_v2* err) {
    const int e = errno;
    if (e > MODBUS_ENOBASE && e <= MODBUS_ENOBASE + MODBUS_EXCEPTION_GATEWAY_TARGET) {
        set_err(err, FL_ERRK_EXCEPTION, e - MODBUS_ENOBASE, "Modbus exception: %s", modbus_strerror(e));
        return FL_ERROR;
    }
    if (l->interrupted.load()) {
        set_err(err, FL_ERRK_LINK, e, "interrupted%s", "");
        disconnect(l);
        return FL_RETRY;
    }
    switch (e) {
        case ETIMEDOUT:
            set_err(err, FL_ERRK_TIMEOUT, e, "no response within the timeout%s", "");
            if (l->mode != Mode::rtu)
                disconnect(l);  // a late reply would desync the stream
            else
                wait_out_late_reply(l, sent, err);
            return FL_RETRY;
        case EMBBADCRC:
            set_err(err, FL_ERRK_CRC, e, "CRC error in response%s", "");
            // The rest of a damaged frame, if any, until the line is quiet.
            if (l->mode == Mode::rtu)
                drain(l, std::max<Clock::duration>(l->silence, std::chrono::milliseconds(20)),
                      std::chrono::milliseconds(l->timeout_ms));
            return FL_RETRY;
        case EMBBADDATA:
        case EMBBADEXC:
        case EMBMDATA:
        case EMBBADSLAVE:
            set_err(err, FL_ERRK_PROTOCOL, e, "malformed response: %s", modbus_strerror(e));
            if (l->mode == Mode::rtu)
                wait_out_late_reply(l, sent, nullptr);
            else
                disconnect(l);
            return FL_RETRY;
        default:
            set_err(err, FL_ERRK_LINK, e, "link error: %s", modbus_strerror(e));
            disconnect(l);
            return FL_RETRY;
    }
}

// Connects on demand (after a failure the next request reconnects) and addresses the unit; on
// a serial line, waits for the silent interval (and the unit switch delay) first, then discards
// whatever is already waiting on the line.
fl_status prepare(Link* l, uint8_t unit, fl_error_v2* err) {
    if (!l->connected) {
        if (fl_status s = mb_open(l, err); s != FL_OK) return s;
    }
    modbus_set_slave(l->ctx, unit);
    if (l->serial() && l->last_unit >= 0) {
        auto quiet = l->silence;
        if (unit != l->last_unit) quiet = std::max(quiet, l->unit_switch_delay);
        std::this_thread::sleep_until(l->quiet_since + quiet);
    }
    if (l->serial()) discard_waiting(l);
    l->last_unit = unit;
    return FL_OK;
}

// The end of a transaction: the line is quiet from now on.
void settle(Link* l) {
    l->quiet_since = Clock::now();
}

// One request on a serial line, as a raw PDU behind the unit id (libmodbus adds the CRC), and its
// answer: frames are received until one passes `ours` (the answer, returning the value count or
// -1 with errno set for an exception) or the timeout passes. Every other frame is discarded and
// counted. Returns the count, or -1 with errno set.
template <typename Match>
int transact(Link* l, const std::uint8_t* raw, int raw_len, Match ours) {
    if (modbus_send_raw_request(l->ctx, raw, raw_len) < 0) return -1;
    const auto deadline = Clock::now() + std::chrono::milliseconds(l->timeout_ms);
    std::uint8_t rsp[MODBUS_RTU_MAX_ADU_LENGTH];
    int rc = -1;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            errno = ETIMEDOUT;
            break;
        }
        modbus_set_response_timeout(l->ctx, static_cast<uint32_t>(left / 1000000),
                                    static_cast<uint32_t>(left % 1000000));
        const int n = modbus_receive_confirmation(l->ctx, rsp);
        if (n < 0) break;  // timeout, CRC error, link error
        const int unit = raw[0];
        const int fc = raw[1];
        if (n >= 5 && rsp[0] == unit && rsp[1] == (fc | 0x80)) {  // an exception from the unit asked
            errno = rsp[2] > 0 && rsp[2] <= MODBUS_EXCEPTION_GATEWAY_TARGET ? MODBUS_ENOBASE + rsp[2] : EMBBADEXC;
            break;
        }
        if (n > 0 && rsp[0] == unit && rsp[1] == fc && (rc = ours(rsp, n)) >= 0) break;
        ++l->mismatched_replies;  // another unit's frame (n == 0: libmodbus's filter), or not this answer
        rc = -1;
    }
    modbus_set_response_timeout(l->ctx, static_cast<uint32_t>(l->timeout_ms / 1000),
                                static_cast<uint32_t>((l->timeout_ms % 1000) * 1000));
    return rc;
}

constexpr std::uint8_t kReadFunction[] = {MODBUS_FC_READ_COILS, MODBUS_FC_READ_DISCRETE_INPUTS,
                                          MODBUS_FC_READ_INPUT_REGISTERS, MODBUS_FC_READ_HOLDING_REGISTERS};

int serial_read(Link* l, fl_read_v2* req) {
    const bool bits = req->area <= FL_AREA_DISCRETE;
    const int bytes = bits ? (req->count + 7) / 8 : 2 * req->count;
    const std::uint8_t raw[] = {req->unit,
                                kReadFunction[req->area],
                                static_cast<std::uint8_t>(req->address >> 8),
                                static_cast<std::uint8_t>(req->address & 0xFF),
                                static_cast<std::uint8_t>(req->count >> 8),
                                static_cast<std::uint8_t>(req->count & 0xFF)};
    return transact(l, raw, sizeof raw, [&](const std::uint8_t* rsp, int n) {
        if (n != 3 + bytes + 2 || rsp[2] != bytes) return -1;  // the answer to another request
        for (int i = 0; i < req->count; ++i) {
            if (bits)
                req->bits[i] = (rsp[3 + i / 8] >> (i % 8)) & 1;
            else
                req->registers[i] = static_cast<std::uint16_t>(rsp[3 + 2 * i] << 8 | rsp[4 + 2 * i]);
        }
        return static_cast<int>(req->count);
    });
}

int serial_write(Link* l, const fl_write_v2* req) {
    std::uint8_t raw[7 + 2 * MODBUS_MAX_WRITE_REGISTERS] = {req->unit, 0, static_cast<std::uint8_t>(req->address >> 8),
                                                            static_cast<std::uint8_t>(req->address & 0xFF)};
    int len = 6;
    const bool coil = req->area == FL_AREA_COIL;
    if (req->count == 1) {  // FC 5 / 6: the answer echoes address and value
        const unsigned v = coil ? (req->bits[0] ? 0xFF00u : 0u) : req->registers[0];
        raw[1] = coil ? MODBUS_FC_WRITE_SINGLE_COIL : MODBUS_FC_WRITE_SINGLE_REGISTER;
        raw[4] = static_cast<std::uint8_t>(v >> 8);
        raw[5] = static_cast<std::uint8_t>(v & 0xFF);
    } else {  // FC 15 / 16: the answer echoes address and quantity
        const int limit = coil ? MODBUS_MAX_WRITE_BITS : MODBUS_MAX_WRITE_REGISTERS;
        if (req->count > limit) {
            errno = EMBMDATA;
            return -1;
        }
        const int bytes = coil ? (req->count + 7) / 8 : 2 * req->count;
        raw[1] = coil ? MODBUS_FC_WRITE_MULTIPLE_COILS : MODBUS_FC_WRITE_MULTIPLE_REGISTERS;
        raw[4] = static_cast<std::uint8_t>(req->count >> 8);
        raw[5] = static_cast<std::uint8_t>(req->count & 0xFF);
        raw[6] = static_cast<std::uint8_t>(bytes);
        for (int i = 0; i < req->count; ++i) {
            if (coil && req->bits[i]) raw[7 + i / 8] = static_cast<std::uint8_t>(raw[7 + i / 8] | 1u << (i % 8));
            if (!coil) {
                raw[7 + 2 * i] = static_cast<std::uint8_t>(req->registers[i] >> 8);
                raw[8 + 2 * i] = static_cast<std::uint8_t>(req->registers[i] & 0xFF);
            }
        }
        len = 7 + bytes;
    }
    return transact(l, raw, len, [&](const std::uint8_t* rsp, int n) {
        return n == 8 && std::memcmp(rsp + 2, raw + 2, 4) == 0 ? static_cast<int>(req->count) : -1;
    });
}

int tcp_read(Link* l, fl_read_v2* req) {
    switch (req->area) {
        case FL_AREA_COIL:
            return modbus_read_bits(l->ctx, req->address, req->count, req->bits);
        case FL_AREA_DISCRETE:
            return modbus_read_input_bits(l->ctx, req->address, req->count, req->bits);
        case FL_AREA_INPUT:
            return modbus_read_input_registers(l->ctx, req->address, req->count, req->registers);
        default:
            return modbus_read_registers(l->ctx, req->address, req->count, req->registers);
    }
}

int tcp_write(Link* l, const fl_write_v2* req) {
    if (req->area == FL_AREA_COIL) {
        return req->count == 1 ? modbus_write_bit(l->ctx, req->address, req->bits[0])
                               : modbus_write_bits(l->ctx, req->address, req->count, req->bits);
    }
    return req->count == 1 ? modbus_write_register(l->ctx, req->address, req->registers[0])
                           : modbus_write_registers(l->ctx, req->address, req->count, req->registers);
}

fl_status mb_read(void* h, fl_read_v2* req, fl_error_v2* err) {
    auto* l = static_cast<Link*>(h);
    if (fl_status s = prepare(l, req->unit, err); s != FL_OK) return s;
    if (req->area > FL_AREA_HOLDING) {
        set_err(err, FL_ERRK_OTHER, 0, "unknown area%s", "");
        return FL_ERROR;
    }
    const auto sent = Clock::now();
    const int rc = l->serial() ? serial_read(l, req) : tcp_read(l, req);
    if (rc == req->count) {
        settle(l);
        return FL_OK;
    }
    fl_status s = FL_RETRY;
    if (rc >= 0)
        set_err(err, FL_ERRK_PROTOCOL, 0, "short response%s", "");
    else
        s = classify(l, sent, err);
    settle(l);
    return s;
}

fl_status mb_write(void* h, const fl_write_v2* req, fl_error_v2* err) {
    auto* l = static_cast<Link*>(h);
    if (fl_status s = prepare(l, req->unit, err); s != FL_OK) return s;
    if (req->area != FL_AREA_COIL && req->area != FL_AREA_HOLDING) {
        set_err(err, FL_ERRK_OTHER, 0, "area is read-only%s", "");
        return FL_ERROR;
    }
    const auto sent = Clock::now();
    const int rc = l->serial() ? serial_write(l, req) : tcp_write(l, req);
    const fl_status s = rc >= 0 ? FL_OK : classify(l, sent, err);
    settle(l);
    return s;
}

fl_status mb_create(const char* driver, const fl_kv_v2* opts, size_t n, const fl_host_v2* host, void** handle,
                    fl_error_v2* err) {
    auto* l = new (std::nothrow) Link();
    if (!l) return FL_ERROR;
    l->services = host;
    if (std::strcmp(driver, "modbus-rtu") == 0)
        l->mode = Mode::rtu;
    else if (std::strcmp(driver, "modbus-tcp") == 0)
        l->mode = Mode::tcp;
    else
        l->mode = Mode::rtu_over_tcp;
    l->device = opt(opts, n, "device", "");
    l->baud = std::atoi(opt(opts, n, "baud", "9600"));
    const std::string parity = opt(opts, n, "parity", "none");
    l->parity = parity == "even" ? 'E' : parity == "odd" ? 'O' : 'N';
    l->data_bits = std::atoi(opt(opts, n, "data_bits", "8"));
    l->stop_bits = std::atoi(opt(opts, n, "stop_bits", "1"));
    l->host = opt(opts, n, "host", "");
    l->port = std::atoi(opt(opts, n, "port", "502"));
    l->timeout_ms = std::atol(opt(opts, n, "timeout", "300"));
    l->unit_switch_delay = std::chrono::milliseconds(std::atol(opt(opts, n, "unit_switch_delay", "0")));
    // 3.5 characters of start + data + parity + stop bits; a fixed 1.75 ms above 19200 baud.
    const int bits = 1 + l->data_bits + (l->parity == 'N' ? 0 : 1) + l->stop_bits;
    l->silence = l->baud > 19200 ? std::chrono::microseconds(1750)
                                 : std::chrono::microseconds(3500000LL * bits / std::max(l->baud, 1));
    if (l->mode == Mode::rtu && l->device.empty()) {
        set_err(err, FL_ERRK_OTHER, 0, "option 'device' is required for %s", driver);
        delete l;
        return FL_ERROR;
    }
    if (l->mode != Mode::rtu && l->host.empty()) {
        set_err(err, FL_ERRK_OTHER, 0, "option 'host' is required for %s", driver);
        delete l;
        return FL_ERROR;
    }
    *handle = l;
    return FL_OK;
}

void mb_interrupt(void* h) {
    auto* l = static_cast<Link*>(h);
    l->interrupted.store(true);
    const int fd = l->fd.load();
    // A TCP socket can be woken at once; a serial read returns at the latest after the timeout.
    if (fd >= 0 && static_cast<Link*>(h)->mode != Mode::rtu) shutdown(fd, SHUT_RDWR);
}

std::size_t mb_counters(void* h, fl_counter_v2* out, std::size_t max) {
    const auto* l = static_cast<const Link*>(h);
    const fl_counter_v2 all[] = {{"late_replies", l->late_replies.load()},
                                 {"mismatched_replies", l->mismatched_replies.load()},
                                 {"discarded_bytes", l->discarded_bytes.load()}};
    constexpr std::size_t n = sizeof all / sizeof all[0];
    for (std::size_t i = 0; i < std::min(n, max); ++i) out[i] = all[i];
    return n;
}

void mb_close(void* h) {
    disconnect(static_cast<Link*>(h));
}
void mb_destroy(void* h) {
    disconnect(static_cast<Link*>(h));
    delete static_cast<Link*>(h);
}

// Bus time per request and per register: RTU counts characters of 11 bits (start, 8 data,
// parity or a second stop bit, stop) at the line speed: request 8 + response header and CRC 5
// + two silent intervals of 3.5 characters. A converter (RTU over TCP) has the same serial line
// behind it. Modbus TCP: MBAP request 12 + response header 9 bytes at 10 Mbit/s; the round trip
// is the bus's configured turnaround.
fl_status mb_bus_model(const char* driver, const fl_kv_v2* opts, size_t n, fl_bus_model_v2* out, fl_error_v2* err) {
    const bool tcp = std::strcmp(driver, "modbus-tcp") == 0;
    out->max_registers = MODBUS_MAX_READ_REGISTERS;
    out->max_bits = MODBUS_MAX_READ_BITS;
    if (tcp) {
        constexpr double kByteUs = 0.8;
        out->flags = 0;
        out->request_overhead_us = 21 * kByteUs;
        out->register_us = 2 * kByteUs;
        out->bit_us = kByteUs / 8;
        out->unit_min = 0;
        out->unit_max = 255;
        return FL_OK;
    }
    const long baud = std::atol(opt(opts, n, "baud", "9600"));
    if (baud <= 0) {
        set_err(err, FL_ERRK_OTHER, 0, "baud '%s' is not a line speed", opt(opts, n, "baud", ""));
        return FL_ERROR;
    }
    const double char_us = 11e6 / static_cast<double>(baud);
    out->flags = FL_BUS_SHARED_LINE;
    out->request_overhead_us = (8 + 5 + 7) * char_us;
    out->register_us = 2 * char_us;
    out->bit_us = char_us / 8;
    out->unit_min = 1;  // 0 is broadcast (no answer), 248..255 reserved
    out->unit_max = 247;
    return FL_OK;
}

const fl_driver_v2 kTable = {sizeof(fl_driver_v2),
                             FL_DRIVER_ABI_V2,
                             "modbus",
                             "0.2.0",
                             kNames,
                             kOptions,
                             sizeof kOptions / sizeof kOptions[0],
                             mb_bus_model,
                             mb_create,
                             mb_open,
                             mb_read,
                             mb_write,
                             mb_interrupt,
                             mb_close,
                             mb_destroy,
                             nullptr,
                             mb_counters,
                             {}};

}  // namespace

extern "C" const fl_driver_v2* fl_modbus_driver_table(void) {
    return &kTable;
}
