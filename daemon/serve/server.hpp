// The local Modbus TCP server (gateway.modbus_server): a site's HMI or SCADA reads what the
// cloud gets, from the same cache, even while the cloud is down. Its own thread serves up to
// max_clients connections with poll(); requests are framed here (MBAP) and answered with
// libmodbus's reply functions from the register image (image.hpp). A write to a mapped writable
// point goes through the checked write path (config::accept_write, then the bus worker, which
// writes and reads back); the client waits for that while the others go on being served.
#pragma once

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
#include "core/write_job.hpp"
#include "serve/image.hpp"
#include "serve/request.hpp"

namespace fieldlink::serve {

struct ServerCounters {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> exceptions{0};
    std::atomic<std::uint64_t> writes{0};
    std::atomic<std::uint64_t> clients_refused{0};  // over max_clients
    std::atomic<std::uint64_t> clients_idle{0};     // closed after idle_timeout
};

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
    void accept_clients();
    bool serve(Client& c);  // false: close it
    void reply_read(int fd, const std::vector<std::uint8_t>& adu, const Answer& a);
    void reply_exception(int fd, const std::vector<std::uint8_t>& adu, int code);
    bool start_write(Client& c, const std::vector<std::uint8_t>& adu, core::WriteJobPtr job);
    void finish_writes();

    const config::Config& cfg_;
    std::shared_ptr<const Cache> cache_;
    Image image_;
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
