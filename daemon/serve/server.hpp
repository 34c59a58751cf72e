// The local Modbus TCP server (gateway.modbus_server): a site's HMI or SCADA reads what the
// cloud gets, from the same cache, even while the cloud is down. Its own thread serves up to
// max_clients connections with poll(); requests are framed here (MBAP) and answered with
// libmodbus's reply functions from the register image (image.hpp). A write to a mapped writable
// point goes through the checked write path (config::accept_write, then the bus worker, which
// writes and reads back); the client waits for that while the others go on being served.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "core/figures.hpp"
#include "core/write_job.hpp"
#include "serve/image.hpp"
#include "serve/request.hpp"

namespace fieldlink::serve {

struct ServerCounters {
    std::atomic<std::uint64_t> clients{0};  // connected now
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> exceptions{0};
    std::atomic<std::uint64_t> writes{0};
    std::atomic<std::uint64_t> clients_refused{0};  // over max_clients
    std::atomic<std::uint64_t> clients_idle{0};     // closed after idle_timeout
};

namespace figures {
using S = ServerCounters;
using Row = core::Figure<ServerCounters, std::atomic<std::uint64_t>>;
// The server's figures: /api/runtime's "modbus_server" keys, the fieldlink_modbus_server_*
// families of /metrics.
inline constexpr std::array<Row, 6> kServer = {{
    {&S::clients, "clients", "fieldlink_modbus_server_clients", "", core::MetricType::gauge,
     "Clients connected to the local Modbus TCP server.", ""},
    {&S::requests, "requests", "fieldlink_modbus_server_requests_total", "", core::MetricType::counter,
     "Requests the local Modbus TCP server answered.", ""},
    {&S::exceptions, "exceptions", "fieldlink_modbus_server_exceptions_total", "", core::MetricType::counter,
     "Requests answered with a Modbus exception (unmapped, stale, refused write, ...).", ""},
    {&S::writes, "writes", "fieldlink_modbus_server_writes_total", "", core::MetricType::counter,
     "Writes a client made, handed to the bus worker after the checks.", ""},
    {&S::clients_refused, "clients_refused", "fieldlink_modbus_server_clients_refused_total", "",
     core::MetricType::counter, "Connections closed at once: max_clients were connected.", ""},
    {&S::clients_idle, "clients_idle", "fieldlink_modbus_server_clients_idle_total", "", core::MetricType::counter,
     "Connections closed after idle_timeout without a request.", ""},
}};
}  // namespace figures

class Server {
  public:
    using SubmitWrite = std::function<void(core::WriteJobPtr)>;
    // `cfg` outlives the server.
    Server(const config::Config& cfg, std::shared_ptr<const Cache> cache, SubmitWrite submit);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and starts serving; false with why when the address cannot be bound.
    bool start(std::string* error);
    void stop();
    // A reload: the server goes on with `cfg` (same listen address) and its cache; connected
    // clients stay connected, a write on its way still gets its answer.
    void reconfigure(const config::Config& cfg, std::shared_ptr<const Cache> cache);
    const ServerCounters& counters() const { return counters_; }

  private:
    struct Client {
        int fd = -1;
        std::uint64_t serial = 0;  // a descriptor's number is taken again after a close
        std::vector<std::uint8_t> in;
        std::int64_t last_ms = 0;
        bool waiting = false;  // a write is on its way to the device
    };
    // Writes finished by a bus worker, handed to the server's thread; shared with the jobs'
    // callbacks, which may outlive the server.
    struct Mailbox {
        struct Finished {
            int fd;
            std::uint64_t serial;
            std::vector<std::uint8_t> query;
            int exception;  // 0: written and read back
        };
        std::mutex mu;
        std::vector<Finished> done;
        int wake_fd = -1;  // eventfd: stop, or a write finished
        ~Mailbox();
        void post(Finished f);
    };

    void run();
    void halt();  // stops the thread; the sockets stay
    void accept_clients();
    bool serve(Client& c);  // false: close it
    void reply_read(int fd, const std::vector<std::uint8_t>& adu, const Answer& a);
    void reply_exception(int fd, const std::vector<std::uint8_t>& adu, int code);
    bool start_write(Client& c, const std::vector<std::uint8_t>& adu, core::WriteJobPtr job);
    void finish_writes();

    const config::Config* cfg_;
    std::shared_ptr<const Cache> cache_;
    std::unique_ptr<Image> image_;
    SubmitWrite submit_;
    ServerCounters counters_;
    int listen_fd_ = -1;
    std::shared_ptr<Mailbox> mailbox_ = std::make_shared<Mailbox>();
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::map<int, Client> clients_;
    std::uint64_t next_serial_ = 1;
    void* reply_ctx_ = nullptr;  // a libmodbus TCP context, used only to encode and send replies
};

}  // namespace fieldlink::serve
