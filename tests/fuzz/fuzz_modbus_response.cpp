// A hostile Modbus device, seen through the whole read path: the points of a device come from
// the input (areas, types, orders, addresses), the planner coalesces them, and each planned read
// goes through the modbus driver plugin (fl_modbus: modbus-tcp or modbus-rtu-over-tcp, on
// libmodbus) to a server thread on loopback that answers with bytes from the input, then the
// response is decoded as the bus worker decodes it.
//
// libmodbus (from Debian) is not instrumented and rejects a wrong transaction id, unit or CRC
// before anything else runs, so the server keeps the framing right unless the input says
// otherwise: it echoes the transaction id and unit, and fixes the MBAP length, the byte count
// and the CRC per flag bits. The fuzzer then explores function codes, exception codes, counts,
// lengths and register images, and every error class the driver maps.
//
// Input: [mode/flags] [points...] then, per planned read, a response record:
//   [kind] [count adjust] [len] data...   (see Server::respond)
#include <arpa/inet.h>
#include <fieldlink/driver.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fieldlink/crc16.hpp>
#include "bus/plan.hpp"
#include "mapping/decode.hpp"

extern "C" const fl_driver_v2* fl_modbus_driver_table(void);

namespace {

using fieldlink::config::Area;
using fieldlink::config::DataType;
using fieldlink::config::PointConfig;
using fieldlink::config::WordOrder;

// Bytes of the current input, consumed by the server as it answers.
struct Script {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
    std::size_t pos = 0;
    std::uint8_t next() { return pos < size ? data[pos++] : 0; }
};

// A loopback Modbus "device" on its own thread: reads one request, answers it from the script.
class Server {
  public:
    Server() {
        signal(SIGPIPE, SIG_IGN);  // the driver may drop a connection the server still answers on
        listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        listen(listen_fd_, 16);
        thread_ = std::thread([this] { serve(); });
    }
    int port() const { return port_; }
    void set_script(Script* s, bool rtu) {
        std::lock_guard<std::mutex> lock(m_);
        script_ = s;
        rtu_ = rtu;
    }

  private:
    // Every connection at once (each driver instance keeps its own).
    void serve() {
        std::vector<int> clients;
        for (;;) {
            std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
            for (int c : clients) fds.push_back({c, POLLIN, 0});
            if (poll(fds.data(), fds.size(), -1) <= 0) continue;
            if (fds[0].revents & POLLIN) {
                const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    clients.push_back(c);
                }
            }
            for (std::size_t i = 1; i < fds.size(); ++i) {
                if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                if (!answer(fds[i].fd)) {
                    close(fds[i].fd);
                    clients.erase(std::find(clients.begin(), clients.end(), fds[i].fd));
                }
            }
        }
    }

    // One request in, one crafted response out. False: the connection is to be closed.
    bool answer(int c) {
        std::uint8_t req[16];
        bool rtu = false;
        {
            std::lock_guard<std::mutex> lock(m_);
            rtu = rtu_;
        }
        const std::size_t want = rtu ? 8 : 12;  // read requests: RTU 8 bytes, TCP MBAP 7 + PDU 5
        const ssize_t got = recv(c, req, want, MSG_WAITALL);
        if (got != static_cast<ssize_t>(want)) return false;
        std::lock_guard<std::mutex> lock(m_);
        if (!script_) return false;
        std::vector<std::uint8_t> out = respond(*script_, req, rtu);
        if (!out.empty() && send(c, out.data(), out.size(), MSG_NOSIGNAL) < 0) return false;
        return !close_after_;
    }

    // kind: bits 0-1 response type (0 normal, 1 exception, 2 wrong function, 3 raw bytes);
    // bit 2 keep the byte count as given; bit 3 keep the MBAP length / CRC as given; bit 4 close
    // after answering; bits 5-7 exception code.
    std::vector<std::uint8_t> respond(Script& s, const std::uint8_t* req, bool rtu) {
        const std::uint8_t kind = s.next();
        const std::uint8_t fc = rtu ? req[1] : req[7];
        const std::uint8_t unit = rtu ? req[0] : req[6];
        const std::uint16_t count =
            rtu ? static_cast<std::uint16_t>(req[4] << 8 | req[5]) : static_cast<std::uint16_t>(req[10] << 8 | req[11]);
        const std::uint8_t adjust = s.next();
        // Anything but an exact answer is followed by a close, so libmodbus learns at once that no
        // more bytes come (instead of waiting out its response timeout on every such input).
        close_after_ = (kind & 0x1F) != 0 || (adjust & 0x80) != 0;
        std::vector<std::uint8_t> pdu;
        switch (kind & 3) {
            case 0: {  // a normal answer: byte count and data
                const std::size_t bytes = fc <= 2 ? (count + 7) / 8 : count * 2u;
                // The data: as long as the count asks for, or (bit 7 of adjust) up to two bytes short,
                // or (kind bit 2) any length with that byte count.
                std::size_t n = bytes;
                if (kind & 4)
                    n = s.next();
                else if (adjust & 0x80)
                    n = bytes - std::min<std::size_t>(bytes, adjust % 3);
                pdu.push_back(fc);
                pdu.push_back(static_cast<std::uint8_t>((kind & 4) ? n : bytes));
                for (std::size_t i = 0; i < n && i < 260; ++i) pdu.push_back(s.next());
                break;
            }
            case 1:  // an exception
                pdu.push_back(static_cast<std::uint8_t>(fc | 0x80));
                pdu.push_back(static_cast<std::uint8_t>((kind >> 5) + (adjust & 7)));
                break;
            case 2:  // another function code
                pdu.push_back(adjust);
                for (std::uint8_t i = 0, n = s.next(); i < n && i < 8; ++i) pdu.push_back(s.next());
                break;
            default:  // whatever comes
                for (std::uint8_t i = 0, n = s.next(); i < n; ++i) pdu.push_back(s.next());
                break;
        }
        std::vector<std::uint8_t> out;
        if (rtu) {
            out.push_back((kind & 8) ? s.next() : unit);
            out.insert(out.end(), pdu.begin(), pdu.end());
            std::uint16_t crc = fieldlink::modbus_crc16(out.data(), out.size());
            if (kind & 8) crc = static_cast<std::uint16_t>(crc ^ adjust);
            out.push_back(static_cast<std::uint8_t>(crc & 0xFF));
            out.push_back(static_cast<std::uint8_t>(crc >> 8));
        } else {
            const std::uint16_t len =
                (kind & 8) ? static_cast<std::uint16_t>(adjust) : static_cast<std::uint16_t>(pdu.size() + 1);
            out = {req[0], req[1], 0, 0, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len), unit};
            out.insert(out.end(), pdu.begin(), pdu.end());
        }
        return out;
    }

    int listen_fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::mutex m_;
    Script* script_ = nullptr;
    bool rtu_ = false;
    bool close_after_ = false;
};

// A device's points from the input: up to 12, each from 4 bytes.
std::vector<PointConfig> points_from(Script& s) {
    std::vector<PointConfig> pts;
    const int n = 1 + s.next() % 12;
    for (int i = 0; i < n; ++i) {
        PointConfig p;
        p.name = "p" + std::to_string(i);
        const std::uint8_t a = s.next(), b = s.next(), c = s.next(), d = s.next();
        p.area = static_cast<Area>(a & 3);
        p.type = fieldlink::config::is_bit_area(p.area) ? DataType::boolean : static_cast<DataType>((a >> 2) % 11);
        if (p.type == DataType::boolean && !fieldlink::config::is_bit_area(p.area)) p.bit = b & 15;
        p.order = static_cast<WordOrder>((a >> 6) & 3);
        p.length = p.type == DataType::string ? 1 + c % 8 : 0;
        p.address = static_cast<std::uint16_t>((b << 4 | c) % 300);
        if (d & 1) p.scale = 0.1;
        if (d & 2) p.offset = -5;
        pts.push_back(p);
    }
    return pts;
}

struct Driver {
    Server server;
    void* tcp = nullptr;
    void* rtu = nullptr;
    const fl_driver_v2* t = fl_modbus_driver_table();
    Driver() {
        const std::string port = std::to_string(server.port());
        auto make = [&](const char* driver) {
            const fl_kv_v2 kv[] = {{sizeof(fl_kv_v2), 0, "host", "127.0.0.1"},
                                   {sizeof(fl_kv_v2), 0, "port", port.c_str()},
                                   {sizeof(fl_kv_v2), 0, "timeout", "20"},
                                   {sizeof(fl_kv_v2), 0, "baud", "115200"}};
            void* h = nullptr;
            fl_error_v2 err{};
            err.struct_size = sizeof err;
            t->create(driver, kv, 4, nullptr, &h, &err);
            return h;
        };
        tcp = make("modbus-tcp");
        rtu = make("modbus-rtu-over-tcp");
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Driver& d = *new Driver();  // never destroyed: its server thread runs until exit
    if (size < 2) return 0;
    Script s{data, size, 0};
    const std::uint8_t mode = s.next();
    const bool rtu = mode & 1;
    const auto pts = points_from(s);
    fieldlink::bus::CostModel model;
    model.max_gap = mode >> 4;  // 0..15 registers bridged
    const auto plan = fieldlink::bus::plan_reads(pts, model);
    d.server.set_script(&s, rtu);
    std::vector<std::uint16_t> regs(125);
    std::vector<std::uint8_t> bits(2000);
    std::vector<fieldlink::core::PointValue> values;
    for (const auto& r : plan) {
        fl_read_v2 req{};
        req.struct_size = sizeof req;
        req.unit = static_cast<std::uint8_t>(1 + (mode >> 1) % 7);
        req.area = static_cast<std::uint8_t>(r.area);
        req.address = r.address;
        req.count = r.count;
        req.registers = regs.data();
        req.bits = bits.data();
        fl_error_v2 err{};
        err.struct_size = sizeof err;
        const fl_status st = d.t->read(rtu ? d.rtu : d.tcp, &req, &err);
        if (st != FL_OK) continue;
        std::string derr;
        fieldlink::mapping::Response resp{r.area, r.address, r.count, regs.data(), bits.data()};
        fieldlink::mapping::decode_points(pts, r.points, resp, values, &derr);
    }
    d.server.set_script(nullptr, rtu);
    return 0;
}
