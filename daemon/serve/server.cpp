#include "serve/server.hpp"

#include <modbus.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log.hpp"

namespace fieldlink::serve {

namespace {

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

modbus_t* ctx_of(void* p) {
    return static_cast<modbus_t*>(p);
}

}  // namespace

Server::Mailbox::~Mailbox() {
    if (wake_fd >= 0) close(wake_fd);
}

void Server::Mailbox::post(Finished f) {
    {
        const std::lock_guard<std::mutex> lock(mu);
        done.push_back(std::move(f));
    }
    const std::uint64_t one = 1;
    (void)!write(wake_fd, &one, sizeof one);
}

Server::Server(const config::Config& cfg, std::shared_ptr<const Cache> cache, SubmitWrite submit)
    : cfg_(&cfg), cache_(std::move(cache)), image_(std::make_unique<Image>(cfg)), submit_(std::move(submit)) {}

Server::~Server() {
    stop();
    if (reply_ctx_) modbus_free(ctx_of(reply_ctx_));
}

bool Server::start(std::string* error) {
    const auto& m = cfg_->gateway.modbus_server;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(m.port);
    if (getaddrinfo(m.host.c_str(), port.c_str(), &hints, &found) != 0 || !found) {
        *error = "gateway.modbus_server.listen: '" + m.host + "' is not an address to listen on";
        return false;
    }
    listen_fd_ = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int on = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    const bool bound =
        listen_fd_ >= 0 && bind(listen_fd_, found->ai_addr, found->ai_addrlen) == 0 && listen(listen_fd_, 64) == 0;
    freeaddrinfo(found);
    if (!bound) {
        *error = "gateway.modbus_server: cannot listen on " + m.host + ":" + port + ": " + std::strerror(errno);
        if (listen_fd_ >= 0) close(listen_fd_);
        listen_fd_ = -1;
        return false;
    }
    mailbox_->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    reply_ctx_ = modbus_new_tcp("127.0.0.1", 502);
    core::logger("serve")->info("Modbus TCP server on {}:{}: {} point(s), at most {} client(s)", m.host, m.port,
                                m.map.size(), m.max_clients);
    thread_ = std::thread([this] { run(); });
    return true;
}

void Server::halt() {
    if (!thread_.joinable()) return;
    stop_ = true;
    const std::uint64_t one = 1;
    (void)!write(mailbox_->wake_fd, &one, sizeof one);
    thread_.join();
    stop_ = false;
}

void Server::reconfigure(const config::Config& cfg, std::shared_ptr<const Cache> cache) {
    const bool running = thread_.joinable();
    halt();
    cfg_ = &cfg;
    cache_ = std::move(cache);
    image_ = std::make_unique<Image>(cfg);
    core::logger("serve")->info("Modbus TCP server: {} point(s) served; {} client(s) stay connected",
                                cfg.gateway.modbus_server.map.size(), clients_.size());
    if (running) thread_ = std::thread([this] { run(); });
}

void Server::stop() {
    if (!thread_.joinable()) return;
    halt();
    for (auto& [fd, c] : clients_) close(fd);
    clients_.clear();
    counters_.clients = 0;
    close(listen_fd_);
    listen_fd_ = -1;
}

void Server::run() {
    const auto& m = cfg_->gateway.modbus_server;
    std::vector<pollfd> fds;
    while (!stop_) {
        fds.clear();
        fds.push_back({mailbox_->wake_fd, POLLIN, 0});
        fds.push_back({listen_fd_, POLLIN, 0});
        for (const auto& [fd, c] : clients_) fds.push_back({fd, static_cast<short>(c.waiting ? 0 : POLLIN), 0});
        if (poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
        if (fds[0].revents & POLLIN) {
            std::uint64_t n = 0;
            (void)!read(mailbox_->wake_fd, &n, sizeof n);
            finish_writes();
        }
        const std::int64_t now = steady_ms();
        for (std::size_t i = 2; i < fds.size(); ++i) {
            auto it = clients_.find(fds[i].fd);
            if (it == clients_.end()) continue;
            Client& c = it->second;
            bool keep = true;
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                std::uint8_t buf[512];
                const ssize_t got = recv(c.fd, buf, sizeof buf, 0);
                keep = got > 0 || (got < 0 && (errno == EAGAIN || errno == EINTR));
                if (got > 0) {
                    c.in.insert(c.in.end(), buf, buf + got);
                    c.last_ms = now;
                    keep = serve(c);
                }
            } else if (!c.waiting && now - c.last_ms > m.idle_timeout.count()) {
                ++counters_.clients_idle;
                keep = false;
            }
            if (!keep) {
                close(c.fd);
                clients_.erase(it);
                counters_.clients = clients_.size();
            }
        }
        // After the clients: those that went away make room for the ones waiting.
        if (fds[1].revents & POLLIN) accept_clients();
    }
}

void Server::accept_clients() {
    const auto& m = cfg_->gateway.modbus_server;
    for (;;) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (static_cast<int>(clients_.size()) >= m.max_clients) {
            ++counters_.clients_refused;
            close(fd);
            continue;
        }
        const int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        clients_[fd] = Client{fd, next_serial_++, {}, steady_ms(), false};
        counters_.clients = clients_.size();
    }
}

// Every whole request in the client's buffer, in order; a write parks the client until it is
// done. False when the stream is not Modbus TCP (the connection is closed).
bool Server::serve(Client& c) {
    while (!c.waiting) {
        const long n = next_request(c.in);
        if (n <= 0) return n == 0;
        const std::vector<std::uint8_t> adu(c.in.begin(), c.in.begin() + n);
        c.in.erase(c.in.begin(), c.in.begin() + n);
        ++counters_.requests;
        auto a = answer_request(*cfg_, *image_, *cache_, adu, core::unix_ms_now());
        if (a.exception != 0) {
            reply_exception(c.fd, adu, a.exception);
        } else if (a.write) {
            c.waiting = start_write(c, adu, std::move(a.write));
        } else {
            reply_read(c.fd, adu, a);
        }
    }
    return true;
}

// A read, from the image: libmodbus's reply, from a mapping holding just the range asked.
void Server::reply_read(int fd, const std::vector<std::uint8_t>& adu, const Answer& a) {
    const auto area = a.area;
    const int address = a.address, n = a.count;
    modbus_mapping_t* map = modbus_mapping_new_start_address(
        area == config::Area::coil ? address : 0, area == config::Area::coil ? n : 0,
        area == config::Area::discrete ? address : 0, area == config::Area::discrete ? n : 0,
        area == config::Area::holding ? address : 0, area == config::Area::holding ? n : 0,
        area == config::Area::input ? address : 0, area == config::Area::input ? n : 0);
    if (!map) {
        reply_exception(fd, adu, kDeviceFailure);
        return;
    }
    const auto& r = a.read;
    if (area == config::Area::coil) std::copy(r.bits.begin(), r.bits.end(), map->tab_bits);
    if (area == config::Area::discrete) std::copy(r.bits.begin(), r.bits.end(), map->tab_input_bits);
    if (area == config::Area::holding) std::copy(r.words.begin(), r.words.end(), map->tab_registers);
    if (area == config::Area::input) std::copy(r.words.begin(), r.words.end(), map->tab_input_registers);
    modbus_set_socket(ctx_of(reply_ctx_), fd);
    modbus_set_slave(ctx_of(reply_ctx_), adu[6]);
    modbus_reply(ctx_of(reply_ctx_), adu.data(), static_cast<int>(adu.size()), map);
    modbus_mapping_free(map);
}

void Server::reply_exception(int fd, const std::vector<std::uint8_t>& adu, int code) {
    ++counters_.exceptions;
    modbus_set_socket(ctx_of(reply_ctx_), fd);
    modbus_set_slave(ctx_of(reply_ctx_), adu[6]);
    modbus_reply_exception(ctx_of(reply_ctx_), adu.data(), static_cast<unsigned>(code));
}

// A checked write, handed to the bus worker; the client waits for it. True when it went.
bool Server::start_write(Client& c, const std::vector<std::uint8_t>& adu, core::WriteJobPtr job) {
    if (!submit_) {
        reply_exception(c.fd, adu, kDeviceFailure);
        return false;
    }
    ++counters_.writes;
    job->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::weak_ptr<Mailbox> box = mailbox_;
    job->done = [box, fd = c.fd, serial = c.serial, adu](const core::WriteJobPtr& j) {
        if (auto b = box.lock()) b->post({fd, serial, adu, exception_of(*j)});
    };
    submit_(std::move(job));
    return true;
}

// Writes the bus workers finished: each client gets its reply (the request echoed, or the
// exception), then its next requests.
void Server::finish_writes() {
    std::vector<Mailbox::Finished> done;
    {
        const std::lock_guard<std::mutex> lock(mailbox_->mu);
        done.swap(mailbox_->done);
    }
    for (auto& f : done) {
        auto it = clients_.find(f.fd);
        if (it == clients_.end() || it->second.serial != f.serial) continue;  // it went away meanwhile
        Client& c = it->second;
        c.waiting = false;
        if (f.exception != 0) {
            reply_exception(c.fd, f.query, f.exception);
        } else {
            modbus_mapping_t* echo =
                modbus_mapping_new_start_address(word_at(f.query, 8), MODBUS_MAX_WRITE_BITS, 0, 0, word_at(f.query, 8),
                                                 MODBUS_MAX_WRITE_REGISTERS, 0, 0);
            modbus_set_socket(ctx_of(reply_ctx_), c.fd);
            modbus_set_slave(ctx_of(reply_ctx_), f.query[6]);
            if (echo) modbus_reply(ctx_of(reply_ctx_), f.query.data(), static_cast<int>(f.query.size()), echo);
            modbus_mapping_free(echo);
        }
        if (!serve(c)) {
            close(c.fd);
            clients_.erase(it);
            counters_.clients = clients_.size();
        }
    }
}

}  // namespace fieldlink::serve
