// serial-line: ASCII sensors on a serial port that stream frames or answer a poll string.
//
// Each named field of a frame (a pattern's named group, or a key of key=value pairs) is a float64
// at input register 4 × its index, so the core's points, planner, deadband and quality work on it
// unchanged; a point names it with `field:` (the host asks field_address() where it is). A field
// is its own request (max_registers 4), so a field a frame lacks is bad alone.
//
// One poll of a device is one frame: the first request of a poll (a lower address than the
// previous request, or another unit) takes a new frame, and the poll's other requests read the
// same one. Streaming: the newest good frame received since the previous poll (waiting up to
// `timeout` for one); polled: the poll string is sent (`{unit}` replaced by the unit id) and the
// answer awaited up to `timeout`.
//
// The port is opened through libserialport (by path, by /dev/serial/by-id/ link, or `usb:SERIAL`,
// found by enumeration each time it is opened, so an adapter that comes back as another
// /dev/ttyUSB* is found). Pseudo-terminals, which libserialport does not open (it looks for the
// port in sysfs), are opened and configured with termios. A hang-up or read error closes the port
// and reports the link down (FL_ERRK_LINK); the core logs that once and reopens with backoff.
#include <fcntl.h>
#include <fieldlink/driver.h>
#include <libserialport.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "frame.hpp"

namespace {

using fieldlink::serial::Checksum;
using fieldlink::serial::Drop;
using fieldlink::serial::FieldValue;
using fieldlink::serial::FrameError;
using fieldlink::serial::FrameSpec;
using fieldlink::serial::Parser;
using fieldlink::serial::Splitter;
using Clock = std::chrono::steady_clock;

constexpr const char* kDriver = "serial-line";

const char* const kNames[] = {kDriver, nullptr};
const fl_option_v2 kOptions[] = {
    {sizeof(fl_option_v2),
     FL_OPT_STRING,
     "device",
     nullptr,
     "serial port: /dev/ttyUSB0, a /dev/serial/by-id/ path, or usb:SERIAL (the adapter's USB serial number)",
     nullptr,
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2), FL_OPT_INT, "baud", "9600", "line speed in bit/s", nullptr, 50, 4000000, kDriver, {}},
    {sizeof(fl_option_v2), FL_OPT_ENUM, "parity", "none", "parity bit", "none|even|odd", 0, 0, kDriver, {}},
    {sizeof(fl_option_v2), FL_OPT_INT, "data_bits", "8", "data bits per character", nullptr, 5, 8, kDriver, {}},
    {sizeof(fl_option_v2), FL_OPT_INT, "stop_bits", "1", "stop bits per character", nullptr, 1, 2, kDriver, {}},
    {sizeof(fl_option_v2),
     FL_OPT_ENUM,
     "flow_control",
     "none",
     "flow control",
     "none|rtscts|xonxoff",
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_ENUM,
     "mode",
     "stream",
     "the sensor streams frames, or answers the poll string",
     "stream|poll",
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_STRING,
     "poll",
     "",
     R"(mode poll: the request sent (escapes \r \n \xHH; {unit}))",
     nullptr,
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_STRING,
     "start",
     "",
     "bytes that open a frame (escapes allowed); none by default",
     nullptr,
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_STRING,
     "terminator",
     "\\n",
     "bytes that close a frame (a CR before LF is dropped)",
     nullptr,
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_INT,
     "length",
     "0",
     "fixed frame length after `start` (0: frames end at the terminator)",
     nullptr,
     0,
     4096,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_INT,
     "max_frame",
     "256",
     "longest frame; a longer one is dropped and counted",
     nullptr,
     8,
     4096,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_ENUM,
     "checksum",
     "none",
     "checksum at the frame's end, as hex digits",
     "none|nmea|sum8|crc16",
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_ENUM,
     "format",
     "regex",
     "fields by a pattern's named groups, or key=value pairs",
     "regex|kv",
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_STRING,
     "pattern",
     "",
     "format regex: a PCRE2 pattern, one named group per field",
     nullptr,
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_STRING,
     "keys",
     "",
     "format kv: the keys read, like \"T H P\"",
     nullptr,
     0,
     0,
     kDriver,
     {}},
    {sizeof(fl_option_v2),
     FL_OPT_DURATION,
     "timeout",
     "2000",
     "how long a poll waits for its frame (streaming: at least the sensor's period)",
     nullptr,
     10,
     60000,
     kDriver,
     {}},
};

void set_err(fl_error_v2* err, unsigned kind, int code, const std::string& msg) {
    if (!err) return;
    err->kind = kind;
    err->code = code;
    std::snprintf(err->message, sizeof err->message, "%s", msg.c_str());
}

const char* opt(const fl_kv_v2* opts, size_t n, const char* key) {
    for (size_t i = 0; i < n; ++i) {
        const fl_kv_v2* kv = fl_kv_at(opts, i);
        if (std::strcmp(kv->key, key) == 0) return kv->value;
    }
    for (const auto& o : kOptions) {
        if (std::strcmp(o.key, key) == 0) return o.default_value ? o.default_value : "";
    }
    return "";
}

struct Settings {
    std::string device;
    int baud = 9600;
    char parity = 'N';
    int data_bits = 8;
    int stop_bits = 1;
    std::string flow = "none";
    bool polled = false;
    std::string poll;
    FrameSpec frame;
    long timeout_ms = 2000;
    std::unique_ptr<Parser> parser;
};

// Options to settings; false with `error` naming the option and what it expects.
bool settings_of(const fl_kv_v2* opts, size_t n, Settings& s, std::string& error) {
    s.device = opt(opts, n, "device");
    s.baud = std::atoi(opt(opts, n, "baud"));
    s.parity = static_cast<char>(std::toupper(static_cast<unsigned char>(opt(opts, n, "parity")[0])));
    s.data_bits = std::atoi(opt(opts, n, "data_bits"));
    s.stop_bits = std::atoi(opt(opts, n, "stop_bits"));
    s.flow = opt(opts, n, "flow_control");
    s.polled = std::strcmp(opt(opts, n, "mode"), "poll") == 0;
    s.timeout_ms = std::atol(opt(opts, n, "timeout"));
    if (s.device.empty()) {
        error = "device: expected a serial port path or usb:SERIAL";
        return false;
    }
    std::string why;
    auto poll = fieldlink::serial::unescape(opt(opts, n, "poll"), &why);
    auto start = fieldlink::serial::unescape(opt(opts, n, "start"), &why);
    auto term = fieldlink::serial::unescape(opt(opts, n, "terminator"), &why);
    if (!poll || !start || !term) {
        error = (!poll ? "poll: " : !start ? "start: " : "terminator: ") + why;
        return false;
    }
    if (s.polled && poll->empty()) {
        error = R"(poll: required with mode poll; expected the request the sensor answers, like "READ\r\n")";
        return false;
    }
    s.poll = *poll;
    s.frame.start = *start;
    s.frame.terminator = *term;
    s.frame.length = static_cast<std::size_t>(std::atol(opt(opts, n, "length")));
    s.frame.max_frame = static_cast<std::size_t>(std::atol(opt(opts, n, "max_frame")));
    if (s.frame.length == 0 && s.frame.terminator.empty()) {
        error = "terminator: empty; a frame needs a terminator or a fixed length";
        return false;
    }
    if (s.frame.length > s.frame.max_frame) {
        error = "length: longer than max_frame (" + std::to_string(s.frame.max_frame) + ")";
        return false;
    }
    const auto checksum = fieldlink::serial::parse_checksum(opt(opts, n, "checksum")).value_or(Checksum::none);
    const auto format =
        fieldlink::serial::parse_format(opt(opts, n, "format")).value_or(fieldlink::serial::Format::regex);
    s.parser = Parser::make(format, opt(opts, n, "pattern"), opt(opts, n, "keys"), checksum, &error);
    return s.parser != nullptr;
}

struct Line {
    Settings cfg;
    Splitter splitter{FrameSpec{}};
    sp_port* port = nullptr;  // when libserialport opened it
    int fd = -1;
    int wake = -1;                  // eventfd: interrupt()
    std::string opened;             // the path the port was found at
    std::vector<FieldValue> frame;  // the poll's frame
    bool have_frame = false;
    bool fresh = false;  // streaming: a good frame arrived since the previous poll
    std::vector<FieldValue> scratch;
    int last_unit = -1;
    int last_address = -1;
    // Frames refused since the poll began: wrong checksum, no match, too long, broken off.
    unsigned bad_checksum = 0, bad_match = 0, bad_length = 0;
    std::string last_bad;
    Clock::time_point frame_at{};  // when the poll's frame arrived (its last byte read)
    // Every frame since the bus started, by what became of it (fl_driver_v2::counters).
    std::atomic<std::uint64_t> frames_ok{0}, frames_bad_checksum{0}, frames_no_match{0}, frames_too_long{0},
        frames_broken_off{0};
};

void close_port(Line* l) {
    if (l->port) {
        sp_close(l->port);
        sp_free_port(l->port);
        l->port = nullptr;
    } else if (l->fd >= 0) {
        ::close(l->fd);
    }
    l->fd = -1;
    l->splitter.reset();
    l->have_frame = false;
    l->fresh = false;
}

// The path of the port with this USB serial number, or "".
std::string find_usb(const std::string& serial) {
    sp_port** ports = nullptr;
    std::string found;
    if (sp_list_ports(&ports) != SP_OK) return found;
    for (int i = 0; ports[i]; ++i) {
        const char* sn = sp_get_port_usb_serial(ports[i]);
        if (sp_get_port_transport(ports[i]) == SP_TRANSPORT_USB && sn && serial == sn) {
            found = sp_get_port_name(ports[i]);
            break;
        }
    }
    sp_free_port_list(ports);
    return found;
}

speed_t speed_of(int baud) {
    static const std::pair<int, speed_t> kSpeeds[] = {
        {50, B50},           {75, B75},           {110, B110},         {134, B134},         {150, B150},
        {200, B200},         {300, B300},         {600, B600},         {1200, B1200},       {1800, B1800},
        {2400, B2400},       {4800, B4800},       {9600, B9600},       {19200, B19200},     {38400, B38400},
        {57600, B57600},     {115200, B115200},   {230400, B230400},   {460800, B460800},   {500000, B500000},
        {576000, B576000},   {921600, B921600},   {1000000, B1000000}, {1152000, B1152000}, {1500000, B1500000},
        {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000}, {3500000, B3500000}, {4000000, B4000000},
    };
    for (const auto& [b, s] : kSpeeds) {
        if (b == baud) return s;
    }
    return 0;
}

// termios, for ports libserialport does not open (pseudo-terminals).
bool open_termios(Line* l, const std::string& path, std::string& error) {
    const speed_t speed = speed_of(l->cfg.baud);
    if (speed == 0) {
        error = "baud " + std::to_string(l->cfg.baud) + " is not a standard rate for " + path;
        return false;
    }
    const int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        error = "cannot open " + path + ": " + std::strerror(errno);
        return false;
    }
    termios t{};
    if (tcgetattr(fd, &t) != 0) {
        error = path + " is not a serial port: " + std::strerror(errno);
        ::close(fd);
        return false;
    }
    cfmakeraw(&t);
    cfsetispeed(&t, speed);
    cfsetospeed(&t, speed);
    t.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag |= l->cfg.data_bits == 5 ? CS5 : l->cfg.data_bits == 6 ? CS6 : l->cfg.data_bits == 7 ? CS7 : CS8;
    if (l->cfg.parity != 'N') t.c_cflag |= PARENB | (l->cfg.parity == 'O' ? PARODD : 0);
    if (l->cfg.stop_bits == 2) t.c_cflag |= CSTOPB;
    if (l->cfg.flow == "rtscts") t.c_cflag |= CRTSCTS;
    if (l->cfg.flow == "xonxoff") t.c_iflag |= IXON | IXOFF;
    if (tcsetattr(fd, TCSANOW, &t) != 0) {
        error = "cannot configure " + path + ": " + std::strerror(errno);
        ::close(fd);
        return false;
    }
    l->fd = fd;
    return true;
}

bool open_libserialport(Line* l, sp_port* port, const std::string& path, std::string& error) {
    auto failed = [&](const char* what) {
        char* msg = sp_last_error_message();
        error = std::string("cannot ") + what + " " + path + ": " + (msg ? msg : "unknown error");
        if (msg) sp_free_error_message(msg);
        sp_close(port);
        sp_free_port(port);
        return false;
    };
    if (sp_open(port, SP_MODE_READ_WRITE) != SP_OK) {
        char* msg = sp_last_error_message();
        error = "cannot open " + path + ": " + (msg ? msg : "unknown error");
        if (msg) sp_free_error_message(msg);
        sp_free_port(port);
        return false;
    }
    const sp_parity parity = l->cfg.parity == 'E'   ? SP_PARITY_EVEN
                             : l->cfg.parity == 'O' ? SP_PARITY_ODD
                                                    : SP_PARITY_NONE;
    const sp_flowcontrol flow = l->cfg.flow == "rtscts"    ? SP_FLOWCONTROL_RTSCTS
                                : l->cfg.flow == "xonxoff" ? SP_FLOWCONTROL_XONXOFF
                                                           : SP_FLOWCONTROL_NONE;
    if (sp_set_baudrate(port, l->cfg.baud) != SP_OK || sp_set_bits(port, l->cfg.data_bits) != SP_OK ||
        sp_set_parity(port, parity) != SP_OK || sp_set_stopbits(port, l->cfg.stop_bits) != SP_OK ||
        sp_set_flowcontrol(port, flow) != SP_OK) {
        return failed("configure");
    }
    int fd = -1;
    if (sp_get_port_handle(port, &fd) != SP_OK || fd < 0) return failed("use");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    l->port = port;
    l->fd = fd;
    return true;
}

fl_status line_open(void* h, fl_error_v2* err) {
    auto* l = static_cast<Line*>(h);
    if (l->fd >= 0) return FL_OK;
    std::string path = l->cfg.device;
    if (path.rfind("usb:", 0) == 0) {
        path = find_usb(path.substr(4));
        if (path.empty()) {
            set_err(err, FL_ERRK_LINK, ENODEV,
                    "no serial port with USB serial number " + l->cfg.device.substr(4) + " (unplugged?)");
            return FL_RETRY;
        }
    }
    std::string error;
    sp_port* port = nullptr;
    const bool ok = sp_get_port_by_name(path.c_str(), &port) == SP_OK ? open_libserialport(l, port, path, error)
                                                                      : open_termios(l, path, error);
    if (!ok) {
        set_err(err, FL_ERRK_LINK, errno, error);
        return FL_RETRY;
    }
    l->opened = path;
    l->splitter = Splitter(l->cfg.frame);
    return FL_OK;
}

// A frame from the line: keep it when good, count it when not. True for a good frame.
bool take(Line* l, const Splitter::Item& item, Clock::time_point arrived) {
    switch (item.drop) {
        case Drop::too_long:
            ++l->bad_length;
            ++l->frames_too_long;
            l->last_bad =
                "frame longer than max_frame " + std::to_string(l->cfg.frame.max_frame) + ": '" + item.frame + "'";
            return false;
        case Drop::broken_off:
            ++l->bad_length;
            ++l->frames_broken_off;
            l->last_bad = "frame broken off by the next start sequence: '" + item.frame + "'";
            return false;
        case Drop::none:
            break;
    }
    std::string detail;
    switch (l->cfg.parser->parse(item.frame, l->scratch, &detail)) {
        case FrameError::none:
            l->frame.swap(l->scratch);
            l->have_frame = true;
            l->frame_at = arrived;
            ++l->frames_ok;
            return true;
        case FrameError::checksum:
            ++l->bad_checksum;
            ++l->frames_bad_checksum;
            break;
        case FrameError::no_match:
            ++l->bad_match;
            ++l->frames_no_match;
            break;
    }
    l->last_bad = detail;
    return false;
}

enum class Got { frame, nothing, link };

// Reads what the port has, waiting up to `deadline` for a good frame (no wait when `deadline` is
// now). Streaming keeps reading until the port is empty, so the newest frame wins.
Got receive(Line* l, Clock::time_point deadline, std::string& error) {
    bool got = false;
    std::vector<Splitter::Item> items;
    char buf[512];
    for (;;) {
        if (got && l->cfg.polled) return Got::frame;
        // Streaming drains what is already there once it has a frame, without waiting.
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd p[2] = {{l->fd, POLLIN, 0}, {l->wake, POLLIN, 0}};
        const int wait = got ? 0 : static_cast<int>(std::max<long long>(left, 0));
        const int rc = ::poll(p, 2, wait);
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) {
            error = std::string("poll: ") + std::strerror(errno);
            return Got::link;
        }
        if (p[1].revents & POLLIN) {
            uint64_t v = 0;
            [[maybe_unused]] auto r = ::read(l->wake, &v, sizeof v);
            error = "interrupted";
            return Got::link;
        }
        if (rc == 0) return got ? Got::frame : Got::nothing;
        if (p[0].revents & POLLIN) {
            const ssize_t n = ::read(l->fd, buf, sizeof buf);
            if (n > 0) {
                items.clear();
                const auto arrived = Clock::now();
                l->splitter.feed(buf, static_cast<std::size_t>(n), items);
                for (const auto& it : items) got = take(l, it, arrived) || got;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            error = n == 0 ? "the port hung up" : std::string("read: ") + std::strerror(errno);
            return Got::link;
        }
        if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            error = "the port hung up (device removed?)";
            return Got::link;
        }
    }
}

fl_status link_lost(Line* l, const std::string& why, fl_error_v2* err) {
    set_err(err, FL_ERRK_LINK, EIO, "serial port " + l->opened + ": " + why);
    close_port(l);
    return FL_RETRY;
}

// What went wrong when no good frame came.
fl_status no_frame(Line* l, fl_error_v2* err) {
    if (l->bad_checksum > 0) {
        set_err(err, FL_ERRK_CRC, 0, std::to_string(l->bad_checksum) + " frame(s) refused: " + l->last_bad);
    } else if (l->bad_match + l->bad_length > 0) {
        set_err(err, FL_ERRK_PROTOCOL, 0,
                std::to_string(l->bad_match + l->bad_length) + " frame(s) refused: " + l->last_bad);
    } else {
        set_err(err, FL_ERRK_TIMEOUT, ETIMEDOUT,
                "no frame within " + std::to_string(l->cfg.timeout_ms) + "ms" + (l->cfg.polled ? " of the poll" : ""));
    }
    return FL_RETRY;
}

// The first request of a poll: a new frame.
fl_status new_frame(Line* l, int unit, fl_error_v2* err) {
    l->bad_checksum = l->bad_match = l->bad_length = 0;
    std::string error;
    const auto deadline = Clock::now() + std::chrono::milliseconds(l->cfg.timeout_ms);
    if (!l->cfg.polled) {
        // The newest good frame since the previous poll, or the next one to come.
        Got g = receive(l, Clock::now(), error);
        if (g == Got::frame) l->fresh = true;
        if (g != Got::link && !l->fresh) g = receive(l, deadline, error);
        if (g == Got::link) return link_lost(l, error, err);
        if (g == Got::nothing && !l->fresh) return no_frame(l, err);
        l->fresh = false;
        return FL_OK;
    }
    // Polled: what came unasked is dropped, then the request goes out.
    tcflush(l->fd, TCIFLUSH);
    l->splitter.reset();
    std::string request = l->cfg.poll;
    for (auto at = request.find("{unit}"); at != std::string::npos; at = request.find("{unit}"))
        request.replace(at, 6, std::to_string(unit));
    std::size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n = ::write(l->fd, request.data() + sent, request.size() - sent);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EAGAIN) {
            pollfd p{l->fd, POLLOUT, 0};
            if (::poll(&p, 1, static_cast<int>(l->cfg.timeout_ms)) <= 0)
                return link_lost(l, "cannot send the poll", err);
        } else if (!(n < 0 && errno == EINTR)) {
            return link_lost(l, std::string("write: ") + std::strerror(errno), err);
        }
    }
    l->have_frame = false;
    const Got g = receive(l, deadline, error);
    if (g == Got::link) return link_lost(l, error, err);
    if (g == Got::nothing) return no_frame(l, err);
    return FL_OK;
}

fl_status line_read(void* h, fl_read_v2* req, fl_error_v2* err) {
    auto* l = static_cast<Line*>(h);
    if (req->area != FL_AREA_INPUT) {
        set_err(err, FL_ERRK_PROTOCOL, 0, "serial-line fields are input registers; name them with `field:`");
        return FL_ERROR;
    }
    if (l->fd < 0) {
        if (fl_status s = line_open(l, err); s != FL_OK) return s;
    }
    const bool first = req->unit != l->last_unit || static_cast<int>(req->address) <= l->last_address;
    l->last_unit = req->unit;
    l->last_address = req->address;
    if (first || !l->have_frame) {
        if (fl_status s = new_frame(l, req->unit, err); s != FL_OK) {
            l->last_address = -1;  // the retry takes a new frame
            return s;
        }
    }
    // A streamed frame is as old as its arrival, not as the poll.
    if (req->struct_size >= offsetof(fl_read_v2, taken_at_ns) + sizeof req->taken_at_ns && req->taken_at_ns) {
        *req->taken_at_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(l->frame_at.time_since_epoch()).count();
    }
    // Each register of the request from the float64 of the field it belongs to.
    for (unsigned i = 0; i < req->count; ++i) {
        const unsigned reg = req->address + i;
        const std::size_t f = reg / 4;
        if (f >= l->frame.size()) {
            set_err(err, FL_ERRK_PROTOCOL, 0, "no field at input register " + std::to_string(reg));
            return FL_ERROR;
        }
        const auto& v = l->frame[f];
        const std::string& name = l->cfg.parser->fields()[f];
        if (!v.present) {
            set_err(err, FL_ERRK_PROTOCOL, 0, "field '" + name + "' is missing from the frame");
            return FL_ERROR;
        }
        if (!v.numeric) {
            set_err(err, FL_ERRK_PROTOCOL, 0, "field '" + name + "' is '" + v.text.substr(0, 40) + "', not a number");
            return FL_ERROR;
        }
        uint64_t bits = 0;
        std::memcpy(&bits, &v.value, sizeof bits);
        req->registers[i] = static_cast<uint16_t>(bits >> (16 * (3 - reg % 4)));
    }
    return FL_OK;
}

std::size_t line_counters(void* h, fl_counter_v2* out, std::size_t max) {
    const auto* l = static_cast<const Line*>(h);
    const fl_counter_v2 all[] = {{"frames_ok", l->frames_ok.load()},
                                 {"frames_bad_checksum", l->frames_bad_checksum.load()},
                                 {"frames_no_match", l->frames_no_match.load()},
                                 {"frames_too_long", l->frames_too_long.load()},
                                 {"frames_broken_off", l->frames_broken_off.load()}};
    constexpr std::size_t n = sizeof all / sizeof all[0];
    for (std::size_t i = 0; i < std::min(n, max); ++i) out[i] = all[i];
    return n;
}

fl_status line_write(void*, const fl_write_v2*, fl_error_v2* err) {
    set_err(err, FL_ERRK_EXCEPTION, 1, "serial-line sensors take no writes");
    return FL_ERROR;
}

fl_status line_create(const char*, const fl_kv_v2* opts, size_t n, const fl_host_v2*, void** handle, fl_error_v2* err) {
    auto* l = new (std::nothrow) Line();
    if (!l) {
        set_err(err, FL_ERRK_OTHER, ENOMEM, "out of memory");
        return FL_ERROR;
    }
    std::string error;
    if (!settings_of(opts, n, l->cfg, error)) {
        set_err(err, FL_ERRK_OTHER, EINVAL, error);
        delete l;
        return FL_ERROR;
    }
    l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake < 0) {
        set_err(err, FL_ERRK_OTHER, errno, std::string("eventfd: ") + std::strerror(errno));
        delete l;
        return FL_ERROR;
    }
    l->splitter = Splitter(l->cfg.frame);
    *handle = l;
    return FL_OK;
}

void line_interrupt(void* h) {
    const uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(static_cast<Line*>(h)->wake, &one, sizeof one);
}

void line_close(void* h) {
    close_port(static_cast<Line*>(h));
}

void line_destroy(void* h) {
    auto* l = static_cast<Line*>(h);
    close_port(l);
    if (l->wake >= 0) ::close(l->wake);
    delete l;
}

// One frame per poll: a request costs a frame's time on the line, and the fields of a frame cost
// nothing more (one float64 field per request, so a missing field is bad alone).
fl_status line_bus_model(const char*, const fl_kv_v2* opts, size_t n, fl_bus_model_v2* out, fl_error_v2* err) {
    Settings s;
    std::string error;
    if (!settings_of(opts, n, s, error)) {
        set_err(err, FL_ERRK_OTHER, EINVAL, error);
        return FL_ERROR;
    }
    const double char_us = 1e6 * (1 + s.data_bits + (s.parity != 'N' ? 1 : 0) + s.stop_bits) / s.baud;
    out->flags = FL_BUS_SHARED_LINE;
    out->request_overhead_us = char_us * static_cast<double>(s.poll.size() + 32);
    out->register_us = 0;
    out->bit_us = 0;
    out->max_registers = 4;
    out->max_bits = 1;
    out->unit_min = 0;
    out->unit_max = 255;
    return FL_OK;
}

fl_status line_field_address(const char*, const fl_kv_v2* opts, size_t n, const char* field, uint16_t* address,
                             fl_error_v2* err) {
    Settings s;
    std::string error;
    if (!settings_of(opts, n, s, error)) {
        set_err(err, FL_ERRK_OTHER, EINVAL, error);
        return FL_ERROR;
    }
    const int i = s.parser->index_of(field);
    if (i < 0 || i > 16383) {
        std::string names;
        for (const auto& f : s.parser->fields()) names += (names.empty() ? "" : ", ") + f;
        set_err(err, FL_ERRK_OTHER, EINVAL,
                std::string("'") + field + "' is not a field of this bus; its fields: " + names);
        return FL_ERROR;
    }
    *address = static_cast<uint16_t>(4 * i);
    return FL_OK;
}

const fl_driver_v2 kTable = {sizeof(fl_driver_v2),
                             FL_DRIVER_ABI_V2,
                             "serial-line",
                             "0.1.0",
                             kNames,
                             kOptions,
                             sizeof kOptions / sizeof kOptions[0],
                             line_bus_model,
                             line_create,
                             line_open,
                             line_read,
                             line_write,
                             line_interrupt,
                             line_close,
                             line_destroy,
                             line_field_address,
                             line_counters,
                             {}};

}  // namespace

extern "C" const fl_driver_v2* fl_serial_driver_table(void) {
    return &kTable;
}
