#include "cli/scan.hpp"

#include <modbus/modbus.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/scan_frames.hpp"
#include "config/points_file.hpp"
#include "core/duration.hpp"

namespace fieldlink::cli {

namespace {

using Clock = std::chrono::steady_clock;

// A Modbus link being scanned: every request waits for the line's 3.5 characters of silence,
// and whatever arrives outside its own answer (a slow unit's late answer) is read off and noted.
// The timeout is the unit's: it runs from the end of the request on the wire (its characters'
// time at the baud rate) to the answer's first byte; the answer's bytes then keep coming with
// gaps of less than 3.5 characters (at least 20 ms: a converter's or a scheduler's pause).
class Link {
  public:
    Link(modbus_t* ctx, bool rtu, long timeout_ms, int baud)
        : ctx_(ctx), rtu_(rtu), timeout_ms_(timeout_ms), baud_(baud) {
        // 3.5 characters of 11 bits (start, 8 data, parity or a second stop, stop); 1.75 ms above 19200.
        silence_ = baud > 19200 ? std::chrono::microseconds(1750)
                                : std::chrono::microseconds(baud > 0 ? 3500LL * 11 * 1000 / baud : 0);
        const auto gap = std::max<std::chrono::microseconds>(silence_, std::chrono::milliseconds(20));
        modbus_set_byte_timeout(ctx_, 0, static_cast<std::uint32_t>(gap.count()));
    }
    ~Link() {
        modbus_close(ctx_);
        modbus_free(ctx_);
    }
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    enum class Result { answered, exception, absent, garbled };

    // FC 3: `count` holding registers at `address` of `unit`. An exception is an answer too (the
    // unit is there); 10 and 11 are a gateway's "nobody there".
    Result read(int unit, int address, int count, std::vector<std::uint16_t>& words, int& exception) {
        before();
        const std::uint8_t req[] = {static_cast<std::uint8_t>(unit),         3,
                                    static_cast<std::uint8_t>(address >> 8), static_cast<std::uint8_t>(address),
                                    static_cast<std::uint8_t>(count >> 8),   static_cast<std::uint8_t>(count)};
        ++probes;
        modbus_set_slave(ctx_, unit);  // libmodbus passes on only this unit's serial frames
        Result r = Result::absent;
        if (modbus_send_raw_request(ctx_, req, sizeof req) < 0) {
            settle();
            return Result::garbled;
        }
        const int h = rtu_ ? 0 : 6;  // where the unit id is in an answer
        const auto deadline = Clock::now() + on_wire(sizeof req + 2) + std::chrono::milliseconds(timeout_ms_);
        std::uint8_t rsp[MODBUS_TCP_MAX_ADU_LENGTH];
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
            if (left <= 0) break;
            modbus_set_response_timeout(ctx_, static_cast<std::uint32_t>(left / 1000000),
                                        static_cast<std::uint32_t>(left % 1000000));
            const int n = modbus_receive_confirmation(ctx_, rsp);
            if (n < 0) {
                if (errno != ETIMEDOUT) {
                    ++garbled;
                    r = Result::garbled;
                    drain();
                }
                break;
            }
            const int from = rsp[h];
            if (from != unit || n == 0) {  // another unit's frame: an earlier probe's late answer
                note_late({rsp, rsp + std::max(n, rtu_ ? 5 + (rsp[1] == 3 ? rsp[2] : 0) : 0)}, from);
                continue;
            }
            if (rsp[h + 1] == 0x83) {
                exception = rsp[h + 2];
                r = exception == 10 || exception == 11 ? Result::absent : Result::exception;
                break;
            }
            if (rsp[h + 1] == 3 && rsp[h + 2] == 2 * count && n >= h + 3 + 2 * count) {
                words.clear();
                for (int i = 0; i < count; ++i)
                    words.push_back(static_cast<std::uint16_t>(rsp[h + 3 + 2 * i] << 8 | rsp[h + 4 + 2 * i]));
                r = Result::answered;
                break;
            }
            ++garbled;
            r = Result::garbled;
            break;
        }
        settle();
        return r;
    }

    // FC 43/14: the basic objects (VendorName, ProductCode, MajorMinorRevision), and the regular
    // ones (ModelName...) where the unit's conformity level says it has them.
    void identify(FoundUnit& u) {
        int conformity = 0;
        if (!identify_stream(u, 1, 0, conformity)) return;
        if ((conformity & 0x7F) >= 2) identify_stream(u, 2, 3, conformity);
    }

    // "SunS" at 40000, 50000 or 0 (0-based), then the map's model ids in order.
    void sunspec(FoundUnit& u) {
        std::vector<std::uint16_t> w;
        int ex = 0;
        for (int base : {40000, 50000, 0}) {
            if (read(u.unit, base, 2, w, ex) == Result::answered && w[0] == 0x5375 && w[1] == 0x6E53) {
                u.sunspec_base = base;
                break;
            }
        }
        if (u.sunspec_base < 0) return;
        long at = u.sunspec_base + 2;
        for (int i = 0; i < 32 && at + 1 < 65536; ++i) {
            if (read(u.unit, static_cast<int>(at), 2, w, ex) != Result::answered || w[0] == 0xFFFF) break;
            u.sunspec_models.push_back(w[0]);
            if (w[0] == 1 && w[1] >= 36) {  // the common model: manufacturer and model (16 registers each)
                std::vector<std::uint16_t> text;
                if (read(u.unit, static_cast<int>(at + 2), 32, text, ex) == Result::answered) {
                    u.sunspec_manufacturer = words_text(text, 0, 16);
                    u.sunspec_model = words_text(text, 16, 16);
                }
            }
            at += 2 + w[1];
        }
    }

    std::vector<int> late_units;
    long probes = 0, garbled = 0, late = 0;

  private:
    static std::string words_text(const std::vector<std::uint16_t>& w, std::size_t from, std::size_t count) {
        std::string s;
        for (std::size_t i = from; i < from + count && i < w.size(); ++i) {
            for (int shift : {8, 0}) {
                const auto c = static_cast<unsigned char>(w[i] >> shift);
                if (c >= 0x20 && c < 0x7F) s += static_cast<char>(c);
            }
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();
        return s;
    }

    bool identify_stream(FoundUnit& u, int code, int object, int& conformity) {
        for (int round = 0; round < 8; ++round) {
            before();
            const auto req = device_id_request(u.unit, code, object);
            ++probes;
            modbus_set_slave(ctx_, u.unit);
            if (modbus_send_raw_request(ctx_, req.data(), static_cast<int>(req.size())) < 0) break;
            const DeviceIdAnswer a = receive_device_id(u.unit);
            settle();
            if (a.status != DeviceIdAnswer::Status::complete) return false;
            conformity = a.conformity;
            for (const auto& [id, value] : a.objects) {
                if (id == 0) u.vendor = value;
                if (id == 1) u.product = value;
                if (id == 2) u.revision = value;
                if (id == 5) u.model_name = value;
            }
            if (!a.more || a.next_object <= object) return true;
            object = a.next_object;
        }
        return true;
    }

    // libmodbus reads no FC 43 answer (its length is not in a fixed place): the bytes are read
    // here until parse_device_id has a whole answer, or the time is up.
    DeviceIdAnswer receive_device_id(int unit) {
        const int fd = modbus_get_socket(ctx_);
        std::vector<std::uint8_t> buf;
        auto deadline = Clock::now() + on_wire(7) + std::chrono::milliseconds(timeout_ms_);
        const auto gap = std::max<Clock::duration>(silence_, std::chrono::milliseconds(20));
        DeviceIdAnswer a;
        while (Clock::now() < deadline) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
            std::uint8_t chunk[300];
            const ssize_t n = ::read(fd, chunk, sizeof chunk);
            if (n <= 0) break;
            buf.insert(buf.end(), chunk, chunk + n);
            deadline = std::max(deadline, Clock::now() + gap);  // the answer is coming
            a = parse_device_id(buf.data(), buf.size(), rtu_, unit);
            if (a.status != DeviceIdAnswer::Status::incomplete) break;
        }
        if (a.status == DeviceIdAnswer::Status::invalid || a.status == DeviceIdAnswer::Status::incomplete) {
            if (!buf.empty()) ++garbled;
            drain();
        }
        return a;
    }

    void note_late(const std::vector<std::uint8_t>& frame, int from) {
        ++late;
        if (rtu_) {
            for (int u : late_answer_units(frame)) late_units.push_back(u);
        } else if (from >= 1 && from <= 247) {
            late_units.push_back(from);
        }
    }

    // Before a request: the line's silence since the last frame, and what is already waiting
    // read off (a late answer to an earlier probe).
    void before() {
        if (rtu_) std::this_thread::sleep_until(quiet_since_ + silence_);
        const int fd = modbus_get_socket(ctx_);
        pollfd p{fd, POLLIN, 0};
        if (fd >= 0 && poll(&p, 1, 0) == 1) {
            const auto bytes = drain();
            if (!bytes.empty()) {
                ++late;
                for (int u : late_answer_units(bytes)) late_units.push_back(u);
            }
        }
    }

    // Reads until the line has been quiet for 3.5 characters (at least 20 ms), at most the timeout.
    std::vector<std::uint8_t> drain() {
        std::vector<std::uint8_t> bytes;
        const int fd = modbus_get_socket(ctx_);
        const auto quiet = std::max<Clock::duration>(silence_, std::chrono::milliseconds(20));
        const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms_);
        auto last = Clock::now();
        while (fd >= 0 && Clock::now() < until && Clock::now() < last + quiet) {
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, 5) != 1) continue;
            std::uint8_t chunk[256];
            const ssize_t n = ::read(fd, chunk, sizeof chunk);
            if (n <= 0) break;
            bytes.insert(bytes.end(), chunk, chunk + n);
            last = Clock::now();
        }
        settle();
        return bytes;
    }

    void settle() { quiet_since_ = Clock::now(); }

    // The time `chars` characters of 11 bits take on a serial line (none over TCP).
    std::chrono::microseconds on_wire(std::size_t chars) const {
        return std::chrono::microseconds(rtu_ && baud_ > 0 ? static_cast<long long>(chars) * 11 * 1000000 / baud_ : 0);
    }

    modbus_t* ctx_;
    bool rtu_;
    long timeout_ms_;
    int baud_;
    std::chrono::microseconds silence_{0};
    Clock::time_point quiet_since_{};
};

// Progress on a terminal (standard error), nothing in a pipe.
class Progress {
  public:
    Progress() : tty_(isatty(STDERR_FILENO) == 1) {}
    void show(const std::string& what, std::size_t done, std::size_t total, std::size_t found) const {
        if (!tty_) return;
        std::fprintf(stderr, "\r\033[K%s: unit %zu/%zu, %zu found", what.c_str(), done, total, found);
        std::fflush(stderr);
    }
    void clear() const {
        if (tty_) std::fprintf(stderr, "\r\033[K");
    }

  private:
    bool tty_;
};

std::vector<Profile> load_profiles() {
    std::vector<Profile> profiles;
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(config::profile_dir(), ec))
        if (e.path().extension() == ".csv") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        std::ifstream in(f);
        std::stringstream text;
        text << in.rdbuf();
        std::vector<std::string> errors;
        profiles.push_back(read_profile_rules(f.stem().string(), text.str(), errors));
        for (const auto& e : errors) std::cerr << "fieldlink scan: profile " << e << " (rule ignored)\n";
    }
    return profiles;
}

// Sweeps `units` on `link`; what answered goes to `report`.
void sweep(Link& link, const std::vector<int>& units, const std::string& what, ScanReport& report) {
    Progress progress;
    std::size_t done = 0;
    for (int unit : units) {
        std::vector<std::uint16_t> w;
        int ex = 0;
        const auto r = link.read(unit, 0, 1, w, ex);
        if (r == Link::Result::answered || r == Link::Result::exception) {
            FoundUnit u;
            u.unit = unit;
            u.exception = r == Link::Result::exception ? ex : 0;
            if (!w.empty()) u.register0 = w[0];
            report.units.push_back(u);
        }
        progress.show(what, ++done, units.size(), report.units.size());
    }
    progress.clear();
    // A late answer: the unit is there, only slower than the timeout.
    for (int u : link.late_units) {
        const bool known =
            std::any_of(report.units.begin(), report.units.end(), [&](const FoundUnit& f) { return f.unit == u; });
        if (!known && std::find(units.begin(), units.end(), u) != units.end()) {
            FoundUnit f;
            f.unit = u;
            f.late = true;
            report.units.push_back(f);
        }
    }
    std::sort(report.units.begin(), report.units.end(),
              [](const FoundUnit& a, const FoundUnit& b) { return a.unit < b.unit; });
}

// Identification of each unit found, over the link it was found on.
void describe(Link& link, ScanReport& report, const std::vector<Profile>& profiles) {
    for (auto& u : report.units) {
        if (u.late) continue;
        link.identify(u);
        link.sunspec(u);
        u.profile = match_profile(profiles, u);
    }
    report.probes += link.probes;
    report.garbled += link.garbled;
    report.late += link.late;
}

// The link at one setting; null with `err` (and errno kept) when the port refuses it.
std::unique_ptr<Link> open_rtu(const std::string& device, int baud, char parity, long timeout_ms, std::string& err) {
    modbus_t* ctx = modbus_new_rtu(device.c_str(), baud, parity, 8, 1);
    if (!ctx) {
        err = "cannot use " + device + " at " + std::to_string(baud) + ": " + modbus_strerror(errno);
        return nullptr;
    }
    if (modbus_connect(ctx) != 0) {
        const int e = errno;
        err = "cannot open " + device + " at " + std::to_string(baud) + " 8" + parity + "1: " + modbus_strerror(e);
        modbus_free(ctx);
        errno = e;
        return nullptr;
    }
    modbus_flush(ctx);  // what waited in the port's buffer is from before this setting
    return std::make_unique<Link>(ctx, true, timeout_ms, baud);
}

int scan_rtu(const ScanOptions& o, const std::vector<int>& units, long timeout_ms, ScanReport& report,
             const std::vector<Profile>& profiles) {
    report.rtu = true;
    report.device = o.rtu;
    std::vector<int> bauds = o.bauds;
    if (bauds.empty()) bauds = {9600, 19200, 38400, 115200, 57600, 4800, 2400};
    std::unique_ptr<Link> found_on;
    int opened = 0;
    for (int baud : bauds) {
        for (char parity : o.parities) {
            std::string err;
            auto link = open_rtu(o.rtu, baud, parity, timeout_ms, err);
            if (!link && errno == EINVAL) {  // a port without this speed or parity (a pty keeps no parity)
                std::cerr << "fieldlink scan: " << err << ": setting skipped\n";
                continue;
            }
            if (!link) {
                std::cerr << "fieldlink scan: " << err << '\n';
                return 2;
            }
            ++opened;
            ScanReport at;
            sweep(*link, units, o.rtu + " " + std::to_string(baud) + " 8" + parity + "1", at);
            if (at.units.empty()) {
                report.probes += link->probes;
                report.garbled += link->garbled;
                report.late += link->late;
                continue;
            }
            if (!found_on) {
                report.units = at.units;
                report.baud = baud;
                report.parity = parity;
                found_on = std::move(link);
            } else {  // --all-settings: a second setting answering too is worth a warning
                std::cerr << "fieldlink scan: units also answer at " << baud << " 8" << parity
                          << "1; the first setting that answered is reported\n";
                report.probes += link->probes;
            }
            if (!o.all_settings) break;
        }
        if (found_on && !o.all_settings) break;
    }
    if (opened == 0) {
        std::cerr << "fieldlink scan: " << o.rtu << " took none of the settings to try\n";
        return 2;
    }
    if (found_on) describe(*found_on, report, profiles);
    return 0;
}

int scan_tcp(const ScanOptions& o, const std::vector<int>& units, long timeout_ms, ScanReport& report,
             const std::vector<Profile>& profiles) {
    std::string host = o.tcp;
    int port = 502;
    if (const auto colon = o.tcp.rfind(':'); colon != std::string::npos && o.tcp.find(']') == std::string::npos) {
        host = o.tcp.substr(0, colon);
        char extra = 0;
        if (std::sscanf(o.tcp.c_str() + colon + 1, "%d%c", &port, &extra) != 1 || port < 1 || port > 65535) {
            std::cerr << "fieldlink scan: --tcp '" << o.tcp << "': expected HOST or HOST:PORT (port 1..65535)\n";
            return 2;
        }
    }
    report.device = host;
    report.port = port;
    modbus_t* ctx = modbus_new_tcp_pi(host.c_str(), std::to_string(port).c_str());
    if (!ctx || modbus_connect(ctx) != 0) {
        std::cerr << "fieldlink scan: cannot connect to " << host << ":" << port << ": " << modbus_strerror(errno)
                  << '\n';
        if (ctx) modbus_free(ctx);
        return 2;
    }
    Link link(ctx, false, timeout_ms, 0);
    sweep(link, units, host + ":" + std::to_string(port), report);
    describe(link, report, profiles);
    return 0;
}

}  // namespace

int run_scan(const ScanOptions& o) {
    if (o.tcp.empty() == o.rtu.empty()) {
        std::cerr << "fieldlink scan: give either --rtu DEVICE or --tcp HOST[:PORT]\n";
        return 2;
    }
    std::string err;
    const auto units = parse_unit_list(o.units, err);
    if (!units) {
        std::cerr << "fieldlink scan: --units " << err << '\n';
        return 2;
    }
    for (char p : o.parities) {
        if (p != 'N' && p != 'E' && p != 'O') {
            std::cerr << "fieldlink scan: --parities '" << o.parities << "': expected letters of N, E, O\n";
            return 2;
        }
    }
    long timeout_ms = o.rtu.empty() ? 200 : 100;
    if (!o.timeout.empty()) {
        const auto d = core::parse_duration(o.timeout);
        if (!d || d->count() < 1 || d->count() > 10000) {
            std::cerr << "fieldlink scan: --timeout '" << o.timeout << "': expected a duration of 1ms..10s\n";
            return 2;
        }
        timeout_ms = static_cast<long>(d->count());
    }
    const auto profiles = load_profiles();
    ScanReport report;
    const auto start = Clock::now();
    const int rc = o.rtu.empty() ? scan_tcp(o, *units, timeout_ms, report, profiles)
                                 : scan_rtu(o, *units, timeout_ms, report, profiles);
    if (rc != 0) return rc;
    report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const std::string yaml = scan_yaml(report, o.cloud);
    if (!o.output.empty()) {
        std::ofstream f(o.output);
        f << yaml;
        if (!f.flush()) {
            std::cerr << "fieldlink scan: cannot write " << o.output << '\n';
            return 2;
        }
    }
    if (o.yaml) {
        std::cout << yaml;
        std::cerr << scan_table(report);
    } else {
        std::cout << scan_table(report);
    }
    if (report.units.empty() && report.garbled > 0)
        std::cerr << "fieldlink scan: " << report.garbled
                  << " answers could not be read at any setting tried: another speed or parity, or a wiring fault "
                     "(A and B swapped, no termination, no common ground)\n";
    return report.units.empty() ? 1 : 0;
}

}  // namespace fieldlink::cli
