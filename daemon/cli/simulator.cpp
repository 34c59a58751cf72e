// `fieldlink simulate`: a Modbus server for demos, tests and benchmarks, on libmodbus.
//
// Serves several unit ids over Modbus TCP and/or Modbus RTU on a serial device (a socat pty in
// tests). Each unit has its own register map:
//   holding/input[0..1]  uint32 (abcd) counter, incremented every --tick
//   holding/input[i]     (unit * 100 + i) & 0xFFFF otherwise
//   coils/discrete[i]    1 when i % 3 == 0
// With --config, each point of the configuration's Modbus devices reads a plausible value of its
// type instead (presets_from); the counter stays unless a point lies on registers 0-1.
// Every unit answers Read Device Identification (FC 43/14, basic objects, stream and individual
// access) with --vendor, --product and the version.
// Control lines on stdin (each answered with "ok" or "error: ..."):
//   off UNIT | on UNIT                    stop / resume answering for a unit
//   set UNIT AREA ADDR WORD [WORD...]     write raw words (bits: 0/1); AREA = coil|discrete|input|holding
//   get UNIT AREA ADDR [COUNT]            prints "ok W1 W2 ..." (what a write left there)
//   protect UNIT AREA ADDR                writes touching ADDR get exception 4 (server device failure)
//   fail UNIT AREA ADDR                   reads touching ADDR get exception 2 (illegal data address)
//   stats                                 prints "requests N connections M" (TCP clients accepted)
#include "simulator.hpp"

#include <modbus/modbus.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fieldlink/crc16.hpp>

#include "mapping/decode.hpp"

namespace fieldlink::cli {
namespace {

constexpr int kRegs = 65536;

struct Unit {
    modbus_mapping_t* map = nullptr;
    bool on = true;
    bool counts[2] = {true, true};             // the counter at registers 0-1: holding, input
    std::set<std::pair<int, int>> protected_;  // (function area: 0 coils, 1 registers; address)
    std::set<std::pair<int, int>> failing;     // (FC 1..4, address): reads refused
};

// Whether a read request (FC 1..4) touches an address whose reads are refused.
bool read_refused(const Unit& u, const std::uint8_t* pdu) {
    const int fc = pdu[0];
    if (fc < 1 || fc > 4 || u.failing.empty()) return false;
    const int addr = pdu[1] << 8 | pdu[2];
    const int count = pdu[3] << 8 | pdu[4];
    for (int a = addr; a < addr + count; ++a) {
        if (u.failing.count({fc, a})) return true;
    }
    return false;
}

// Cell `i` of `area` in unit `u`, written first when `value` is given.
int cell(Unit& u, const std::string& area, int i, std::optional<unsigned> value = std::nullopt) {
    if (area == "holding" || area == "input") {
        auto* tab = area == "holding" ? u.map->tab_registers : u.map->tab_input_registers;
        if (value) tab[i] = static_cast<std::uint16_t>(*value);
        return tab[i];
    }
    auto* tab = area == "coil" ? u.map->tab_bits : u.map->tab_input_bits;
    if (value) tab[i] = static_cast<std::uint8_t>(*value != 0);
    return tab[i];
}

// Whether a write request (FC 5, 6, 15, 16; `pdu` after the unit id) touches a protected address.
bool write_refused(const Unit& u, const std::uint8_t* pdu) {
    const int fc = pdu[0];
    if (fc != 5 && fc != 6 && fc != 15 && fc != 16) return false;
    const int addr = pdu[1] << 8 | pdu[2];
    const int count = fc == 5 || fc == 6 ? 1 : (pdu[3] << 8 | pdu[4]);
    const int area = fc == 5 || fc == 15 ? 0 : 1;
    for (int a = addr; a < addr + count; ++a) {
        if (u.protected_.count({area, a})) return true;
    }
    return false;
}

// Length of the RTU request starting at buf[0], 0 if more bytes are needed, -1 if unknown.
int rtu_request_length(const std::vector<std::uint8_t>& buf) {
    if (buf.size() < 2) return 0;
    switch (buf[1]) {
        case 1:
        case 2:
        case 3:
        case 4:
        case 5:
        case 6:
            return 8;
        case 15:
        case 16:
            return buf.size() < 7 ? 0 : 9 + buf[6];
        case 43:
            return 7;  // MEI type, read code, object id
        default:
            return -1;
    }
}

// The answer PDU to a Read Device Identification request PDU (0x2B 0x0E code object): the basic
// objects, conformity level 0x81 (basic, stream and individual access).
std::vector<std::uint8_t> device_id_answer(const SimulatorOptions& o, const std::uint8_t* req, std::size_t n) {
    if (n < 4 || req[1] != 0x0E) return {0xAB, MODBUS_EXCEPTION_ILLEGAL_FUNCTION};
    const int code = req[2];
    int object = req[3];
    const std::string* objects[] = {&o.vendor, &o.product, &o.revision};
    if (code < 1 || code > 4) return {0xAB, MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE};
    if (code == 4 && object > 2) return {0xAB, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS};
    if (object > 2) object = 0;  // a stream from an object the unit does not have starts again at 0
    std::vector<std::uint8_t> pdu{0x2B, 0x0E, static_cast<std::uint8_t>(code), 0x81, 0, 0, 0};
    const int last = code == 4 ? object : 2;
    for (int id = object; id <= last; ++id) {
        const std::string& v = *objects[id];
        const auto len = std::min<std::size_t>(v.size(), 64);
        pdu.push_back(static_cast<std::uint8_t>(id));
        pdu.push_back(static_cast<std::uint8_t>(len));
        pdu.insert(pdu.end(), v.begin(), v.begin() + static_cast<std::ptrdiff_t>(len));
        ++pdu[6];
    }
    return pdu;
}

class Server {
  public:
    explicit Server(const SimulatorOptions& o) : opts_(o) {
        for (int u : o.units) {
            Unit unit;
            unit.map = modbus_mapping_new(kRegs, kRegs, kRegs, kRegs);
            for (int i = 0; i < kRegs; ++i) {
                const auto v = static_cast<std::uint16_t>((u * 100 + i) & 0xFFFF);
                unit.map->tab_registers[i] = v;
                unit.map->tab_input_registers[i] = v;
                unit.map->tab_bits[i] = static_cast<std::uint8_t>(i % 3 == 0);
                unit.map->tab_input_bits[i] = static_cast<std::uint8_t>(i % 3 == 0);
            }
            units_[u] = unit;
        }
        for (const auto& p : o.presets) apply(p);
        for (auto& [id, u] : units_) set_counter(u, 0);
    }
    ~Server() {
        for (auto& [id, u] : units_) modbus_mapping_free(u.map);
        if (tcp_) modbus_free(tcp_);
        if (rtu_) {
            modbus_close(rtu_);
            modbus_free(rtu_);
        }
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    int run();

  private:
    void apply(const Preset& p);
    static void set_counter(Unit& u, std::uint32_t c) {
        for (int i = 0; i < 2; ++i) {
            if (!u.counts[i]) continue;
            auto* tab = i == 0 ? u.map->tab_registers : u.map->tab_input_registers;
            tab[0] = static_cast<std::uint16_t>(c >> 16);
            tab[1] = static_cast<std::uint16_t>(c & 0xFFFF);
        }
    }
    Unit* unit_for(int id) {
        auto it = units_.find(id);
        return it == units_.end() || !it->second.on ? nullptr : &it->second;
    }
    bool open_tcp();
    bool open_rtu();
    void serve_tcp_client(int fd);
    bool serve_tcp_device_id(int fd);
    void serve_rtu();
    void control_line(const std::string& line);
    static void area_line(const std::string& cmd, std::istringstream& in, Unit& u);
    void ready(int fd, int tfd);
    void read_control();

    SimulatorOptions opts_;
    std::map<int, Unit> units_;
    modbus_t* tcp_ = nullptr;
    modbus_t* rtu_ = nullptr;
    int listen_fd_ = -1;
    int rtu_fd_ = -1;
    std::set<int> clients_;
    std::vector<std::uint8_t> rtu_buf_;
    std::chrono::steady_clock::time_point last_rx_{};
    std::uint64_t requests_ = 0;
    std::uint64_t connections_ = 0;
    std::uint32_t counter_ = 0;
    bool stdin_open_ = true;
    std::string line_buf_;
};

void Server::apply(const Preset& p) {
    auto it = units_.find(p.unit);
    if (it == units_.end()) return;
    Unit& u = it->second;
    const bool bits = config::is_bit_area(p.area);
    for (std::size_t i = 0; i < p.words.size() && p.address + i < kRegs; ++i) {
        const std::size_t a = p.address + i;
        if (bits) {
            (p.area == config::Area::coil ? u.map->tab_bits : u.map->tab_input_bits)[a] = p.words[i] != 0;
            continue;
        }
        auto* tab = p.area == config::Area::holding ? u.map->tab_registers : u.map->tab_input_registers;
        if (p.bit_field) {
            const auto mask = static_cast<std::uint16_t>(1U << p.bit);
            tab[a] = static_cast<std::uint16_t>(p.words[i] ? tab[a] | mask : tab[a] & ~mask);
        } else {
            tab[a] = p.words[i];
        }
        // A point of the configuration on the counter's registers keeps its value.
        if (a < 2) u.counts[p.area == config::Area::holding ? 0 : 1] = false;
    }
}

bool Server::open_tcp() {
    const auto colon = opts_.tcp.rfind(':');
    const std::string host = opts_.tcp.substr(0, colon);
    const std::string port = opts_.tcp.substr(colon + 1);
    tcp_ = modbus_new_tcp_pi(host.c_str(), port.c_str());
    listen_fd_ = tcp_ ? modbus_tcp_pi_listen(tcp_, 16) : -1;
    if (listen_fd_ < 0) {
        std::cerr << "simulate: cannot listen on " << opts_.tcp << ": " << modbus_strerror(errno) << '\n';
        return false;
    }
    return true;
}

bool Server::open_rtu() {
    rtu_ = modbus_new_rtu(opts_.rtu.c_str(), opts_.baud, opts_.parity, 8, 1);
    if (!rtu_ || modbus_connect(rtu_) != 0) {
        std::cerr << "simulate: cannot open " << opts_.rtu << ": " << modbus_strerror(errno) << '\n';
        return false;
    }
    rtu_fd_ = modbus_get_socket(rtu_);
    return true;
}

// FC 43 over TCP: libmodbus reads no more of it than the function code, so the whole ADU (MBAP
// length) is read and answered here. True when the request waiting on `fd` was one.
bool Server::serve_tcp_device_id(int fd) {
    std::uint8_t head[8];
    if (recv(fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT) != static_cast<ssize_t>(sizeof head) || head[7] != 0x2B)
        return false;
    const std::size_t total = 6 + static_cast<std::size_t>(head[4] << 8 | head[5]);
    std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    if (total < 8 || total > sizeof query || recv(fd, query, total, MSG_WAITALL) != static_cast<ssize_t>(total)) {
        close(fd);
        clients_.erase(fd);
        return true;
    }
    ++requests_;
    if (!unit_for(query[6])) return true;
    const auto pdu = device_id_answer(opts_, query + 7, total - 7);
    std::vector<std::uint8_t> adu{query[0],
                                  query[1],
                                  0,
                                  0,
                                  static_cast<std::uint8_t>((pdu.size() + 1) >> 8),
                                  static_cast<std::uint8_t>(pdu.size() + 1),
                                  query[6]};
    adu.insert(adu.end(), pdu.begin(), pdu.end());
    if (send(fd, adu.data(), adu.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(adu.size())) {
        close(fd);
        clients_.erase(fd);
    }
    return true;
}

void Server::serve_tcp_client(int fd) {
    if (serve_tcp_device_id(fd)) return;
    std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    modbus_set_socket(tcp_, fd);
    const int rc = modbus_receive(tcp_, query);
    if (rc <= 0) {
        if (rc < 0) {
            close(fd);
            clients_.erase(fd);
        }
        return;
    }
    ++requests_;
    if (Unit* u = unit_for(query[6])) {
        if (opts_.answer_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(opts_.answer_us));
        if (read_refused(*u, query + 7)) {
            modbus_reply_exception(tcp_, query, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
        } else if (write_refused(*u, query + 7)) {
            modbus_reply_exception(tcp_, query, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
        } else {
            modbus_reply(tcp_, query, rc, u->map);
        }
    }
}

void Server::serve_rtu() {
    std::uint8_t chunk[512];
    const ssize_t n = read(rtu_fd_, chunk, sizeof chunk);
    if (n <= 0) return;
    // A receiver drops an unfinished frame once the line has been silent for 3.5 characters (at
    // least 5 ms here, for the scheduler): noise or a cut-off frame does not swallow the next one.
    const auto now = std::chrono::steady_clock::now();
    const auto gap = std::chrono::microseconds(std::max(5000L, opts_.baud > 19200 ? 1750L : 38500000L / opts_.baud));
    if (!rtu_buf_.empty() && now - last_rx_ > gap) rtu_buf_.clear();
    last_rx_ = now;
    rtu_buf_.insert(rtu_buf_.end(), chunk, chunk + n);
    for (;;) {
        const int len = rtu_request_length(rtu_buf_);
        if (len < 0) {
            rtu_buf_.erase(rtu_buf_.begin());  // resynchronise on garbage
            continue;
        }
        if (len == 0 || rtu_buf_.size() < static_cast<std::size_t>(len)) return;
        const std::uint16_t crc = fieldlink::modbus_crc16(rtu_buf_.data(), static_cast<std::size_t>(len) - 2);
        const bool crc_ok = rtu_buf_[len - 2] == (crc & 0xFF) && rtu_buf_[len - 1] == (crc >> 8);
        if (!crc_ok) {
            rtu_buf_.erase(rtu_buf_.begin());
            continue;
        }
        ++requests_;
        if (rtu_buf_[1] == 43 && unit_for(rtu_buf_[0])) {
            auto adu = device_id_answer(opts_, rtu_buf_.data() + 1, static_cast<std::size_t>(len) - 3);
            adu.insert(adu.begin(), rtu_buf_[0]);
            const std::uint16_t c = fieldlink::modbus_crc16(adu.data(), adu.size());
            adu.push_back(static_cast<std::uint8_t>(c & 0xFF));
            adu.push_back(static_cast<std::uint8_t>(c >> 8));
            if (write(rtu_fd_, adu.data(), adu.size()) != static_cast<ssize_t>(adu.size()))
                std::cerr << "simulate: short write on " << opts_.rtu << '\n';
        } else if (Unit* u = unit_for(rtu_buf_[0])) {
            modbus_set_slave(rtu_, rtu_buf_[0]);
            if (read_refused(*u, rtu_buf_.data() + 1)) {
                modbus_reply_exception(rtu_, rtu_buf_.data(), MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
            } else if (write_refused(*u, rtu_buf_.data() + 1)) {
                modbus_reply_exception(rtu_, rtu_buf_.data(), MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
            } else {
                modbus_reply(rtu_, rtu_buf_.data(), len, u->map);
            }
        }
        rtu_buf_.erase(rtu_buf_.begin(), rtu_buf_.begin() + len);
    }
}

void Server::control_line(const std::string& line) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    int id = 0;
    if (cmd == "stats") {
        std::cout << "requests " << requests_ << " connections " << connections_ << std::endl;
        return;
    }
    if (!(in >> id) || !units_.count(id)) {
        std::cout << "error: expected a configured unit id" << std::endl;
        return;
    }
    Unit& u = units_[id];
    if (cmd == "off" || cmd == "on") {
        u.on = cmd == "on";
        std::cout << "ok" << std::endl;
    } else if (cmd == "set" || cmd == "get" || cmd == "protect" || cmd == "fail") {
        area_line(cmd, in, u);
    } else {
        std::cout << "error: unknown command " << cmd << std::endl;
    }
}

// set / get / protect UNIT AREA ADDR ...
void Server::area_line(const std::string& cmd, std::istringstream& in, Unit& u) {
    std::string area;
    int addr = -1;
    in >> area >> addr;
    if (area != "holding" && area != "input" && area != "coil" && area != "discrete") {
        std::cout << "error: expected an area: coil, discrete, input or holding" << std::endl;
        return;
    }
    if (addr < 0 || addr >= kRegs) {
        std::cout << "error: address out of range" << std::endl;
        return;
    }
    if (cmd == "set") {
        unsigned v = 0;
        for (int i = addr; in >> v && i < kRegs; ++i) cell(u, area, i, v);
    } else if (cmd == "protect") {
        u.protected_.insert({area == "coil" ? 0 : 1, addr});
    } else if (cmd == "fail") {
        const int fc = area == "coil" ? 1 : area == "discrete" ? 2 : area == "holding" ? 3 : 4;
        u.failing.insert({fc, addr});
    } else {
        int count = 1;
        if (!(in >> count)) count = 1;
        std::cout << "ok";
        for (int i = addr; i < std::min(addr + count, kRegs); ++i) std::cout << ' ' << cell(u, area, i);
    }
    std::cout << (cmd == "get" ? "" : "ok") << std::endl;
}

int Server::run() {
    if (!opts_.tcp.empty() && !open_tcp()) return 1;
    if (!opts_.rtu.empty() && !open_rtu()) return 1;
    const int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    itimerspec its{};
    its.it_interval.tv_sec = opts_.tick_ms / 1000;
    its.it_interval.tv_nsec = (opts_.tick_ms % 1000) * 1'000'000;
    its.it_value = its.it_interval;
    timerfd_settime(tfd, 0, &its, nullptr);
    std::cout << "ready" << std::endl;
    for (;;) {
        std::vector<pollfd> fds;
        fds.push_back({tfd, POLLIN, 0});
        if (stdin_open_ && opts_.control) fds.push_back({0, POLLIN, 0});
        if (listen_fd_ >= 0) fds.push_back({listen_fd_, POLLIN, 0});
        if (rtu_fd_ >= 0) fds.push_back({rtu_fd_, POLLIN, 0});
        for (int c : clients_) fds.push_back({c, POLLIN, 0});
        if (poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        for (const auto& p : fds) {
            if (p.revents & (POLLIN | POLLHUP | POLLERR)) ready(p.fd, tfd);
        }
    }
}

// One readable descriptor: the tick timer, the control lines, a new client, the RTU line or a
// TCP client's request.
void Server::ready(int fd, int tfd) {
    if (fd == tfd) {
        std::uint64_t ticks = 0;
        (void)!read(tfd, &ticks, sizeof ticks);
        counter_ += static_cast<std::uint32_t>(ticks);
        for (auto& [id, u] : units_) set_counter(u, counter_);
    } else if (fd == 0) {
        read_control();
    } else if (fd == listen_fd_) {
        const int c = accept(listen_fd_, nullptr, nullptr);
        if (c >= 0) {
            clients_.insert(c);
            ++connections_;
        }
    } else if (fd == rtu_fd_) {
        serve_rtu();
    } else {
        serve_tcp_client(fd);
    }
}

void Server::read_control() {
    char buf[4096];
    const ssize_t n = read(0, buf, sizeof buf);
    if (n <= 0) {
        stdin_open_ = false;  // keep serving; the controller went away
        return;
    }
    line_buf_.append(buf, static_cast<std::size_t>(n));
    for (auto nl = line_buf_.find('\n'); nl != std::string::npos; nl = line_buf_.find('\n')) {
        control_line(line_buf_.substr(0, nl));
        line_buf_.erase(0, nl + 1);
    }
}

// A plausible engineering value for point `i` of a device (see presets_from).
core::Value plausible(const config::PointConfig& p, std::size_t i) {
    using config::DataType;
    if (p.type == DataType::boolean || p.bit >= 0) return i % 2 == 0;
    if (p.type == DataType::string) return p.name.substr(0, static_cast<std::size_t>(p.length) * 2);
    const bool real = p.type == DataType::float32 || p.type == DataType::float64;
    if (p.min && p.max) {
        const double mid = (*p.min + *p.max) / 2;
        return real ? mid : std::round(mid);
    }
    if (real) return 20.0 + 1.5 * static_cast<double>(i);
    // Whole numbers: 100 + i raw, as engineering units after scale and offset.
    return (100.0 + static_cast<double>(i)) * p.scale + p.offset;
}

bool is_modbus(const config::Config& cfg, const config::DeviceConfig& d) {
    return d.bus_index < cfg.buses.size() && cfg.buses[d.bus_index].driver.rfind("modbus", 0) == 0;
}

}  // namespace

std::vector<Preset> presets_from(const config::Config& cfg) {
    std::vector<Preset> out;
    for (const auto& d : cfg.devices) {
        if (!is_modbus(cfg, d)) continue;
        for (std::size_t i = 0; i < d.points.size(); ++i) {
            const auto& p = d.points[i];
            if (p.link) continue;
            Preset pr;
            pr.unit = d.unit;
            pr.area = p.area;
            pr.address = p.address;
            const core::Value v = plausible(p, i);
            if (config::is_bit_area(p.area) || p.bit >= 0) {
                pr.words = {static_cast<std::uint16_t>(std::get<bool>(v) ? 1 : 0)};
                pr.bit_field = p.bit >= 0;
                pr.bit = std::max(p.bit, 0);
            } else {
                pr.words.assign(static_cast<std::size_t>(p.count()), 0);
                if (!mapping::encode_registers(mapping::codec_of(p), v, pr.words.data(), nullptr)) continue;
            }
            out.push_back(std::move(pr));
        }
    }
    return out;
}

std::vector<int> units_of(const config::Config& cfg) {
    std::vector<int> out;
    for (const auto& d : cfg.devices) {
        if (is_modbus(cfg, d) && std::find(out.begin(), out.end(), d.unit) == out.end()) out.push_back(d.unit);
    }
    return out;
}

int run_simulator(const SimulatorOptions& opts) {
    if (opts.tcp.empty() && opts.rtu.empty()) {
        std::cerr << "simulate: give --tcp HOST:PORT and/or --rtu DEVICE\n";
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    Server s(opts);
    return s.run();
}

}  // namespace fieldlink::cli
