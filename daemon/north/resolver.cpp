#include "resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <deque>

#include "core/log.hpp"

namespace fieldlink::north {

bool is_numeric_address(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

namespace {

std::string numeric(const sockaddr* sa) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
    }
    return buf;
}

class CaresResolver final : public Resolver, public TimerHandler {
  public:
    CaresResolver(Loop& loop, ResolverOptions options)
        : loop_(loop), options_(std::move(options)), log_(core::logger("north")) {}

    ~CaresResolver() override {
        loop_.cancel(this);
        if (channel_) {
            for (const auto& [fd, watcher] : watchers_) loop_.unwatch(fd);
            watchers_.clear();
            ares_destroy(channel_);  // pending queries complete with ARES_EDESTRUCTION (ignored)
        }
        ares_library_cleanup();
    }
    CaresResolver(const CaresResolver&) = delete;
    CaresResolver& operator=(const CaresResolver&) = delete;

    bool init(std::string* error) {
        if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
            *error = "cannot initialise c-ares";
            return false;
        }
        ares_options o{};
        o.sock_state_cb = &CaresResolver::socket_state;
        o.sock_state_cb_data = this;
        o.timeout = static_cast<int>(options_.timeout.count());
        o.tries = options_.tries;
        const int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
        if (const int rc = ares_init_options(&channel_, &o, mask); rc != ARES_SUCCESS) {
            *error = std::string("cannot start the resolver: ") + ares_strerror(rc);
            return false;
        }
        if (!options_.servers.empty()) {
            std::string csv;
            for (const auto& s : options_.servers) csv += (csv.empty() ? "" : ",") + s;
            if (const int rc = ares_set_servers_ports_csv(channel_, csv.c_str()); rc != ARES_SUCCESS) {
                *error = "resolver servers '" + csv + "': " + ares_strerror(rc);
                return false;
            }
        }
        return true;
    }

    void resolve(const std::string& host, Callback done) override {
        const TimePoint now = loop_.now();
        if (is_numeric_address(host)) {
            answer_soon(Resolution{{host}, {}}, std::move(done));
            return;
        }
        Entry& e = cache_[host];
        if (!e.pending && now < e.expires) {
            answer_soon(e.result, std::move(done));
            return;
        }
        e.waiting.push_back(std::move(done));
        if (e.pending) return;  // one query per name, however many sessions wait
        e.pending = true;
        auto* q = new Query{this, host};
        ares_addrinfo_hints hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        in_resolve_ = true;  // c-ares may answer at once (hosts file, malformed names)
        ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, &CaresResolver::answered, q);
        in_resolve_ = false;
        arm_timeout();
    }

    void on_timer(TimePoint) override {
        retired_.clear();
        if (!ready_.empty()) {  // answers for the cache and numeric addresses, outside resolve()
            auto ready = std::move(ready_);
            ready_.clear();
            for (auto& [result, done] : ready) done(result);
        }
        ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts and retries
        arm_timeout();
    }

  private:
    struct Entry {
        Resolution result;
        TimePoint expires{};
        bool pending = false;
        bool failing = false;  // logged once per streak of failures
        std::vector<Callback> waiting;
    };
    struct Query {
        CaresResolver* self;
        std::string host;
    };
    struct Watcher final : IoHandler {
        CaresResolver* self = nullptr;
        int fd = -1;
        void on_io(std::uint32_t events) override {
            // c-ares may close this socket inside ares_process_fd; the watcher is then retired
            // (kept alive until the loop turn ends), so nothing of it is used after the call.
            CaresResolver* const resolver = self;
            const bool r = events & (EPOLLIN | EPOLLERR | EPOLLHUP), w = events & EPOLLOUT;
            ares_process_fd(resolver->channel_, r ? fd : ARES_SOCKET_BAD, w ? fd : ARES_SOCKET_BAD);
            resolver->arm_timeout();
        }
    };

    void answer_soon(Resolution r, Callback done) {
        ready_.emplace_back(std::move(r), std::move(done));
        loop_.schedule(this, loop_.now());
    }

    void arm_timeout() {
        if (!ready_.empty() || !retired_.empty()) return;  // already due now
        timeval tv{};
        if (ares_timeout(channel_, nullptr, &tv)) {
            loop_.schedule(this, loop_.now() + std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
        } else {
            loop_.cancel(this);
        }
    }

    static void socket_state(void* data, ares_socket_t fd, int readable, int writable) {
        auto* self = static_cast<CaresResolver*>(data);
        if (!readable && !writable) {
            self->loop_.unwatch(fd);
            if (auto it = self->watchers_.find(fd); it != self->watchers_.end()) {
                // Another event for it may still wait in this loop turn's batch: free it later.
                self->retired_.push_back(std::move(it->second));
                self->watchers_.erase(it);
                self->loop_.schedule(self, self->loop_.now());  // on_timer runs after this turn's I/O
            }
            return;
        }
        auto& w = self->watchers_[fd];
        if (!w) w = std::make_unique<Watcher>();
        w->self = self;
        w->fd = fd;
        self->loop_.watch(fd, (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u), w.get());
    }

    static void answered(void* arg, int status, int, ares_addrinfo* info) {
        std::unique_ptr<Query> q(static_cast<Query*>(arg));
        if (status == ARES_EDESTRUCTION) {
            if (info) ares_freeaddrinfo(info);
            return;
        }
        q->self->complete(q->host, status, info);
        if (info) ares_freeaddrinfo(info);
    }

    void complete(const std::string& host, int status, ares_addrinfo* info) {
        Entry& e = cache_[host];
        e.pending = false;
        Resolution r;
        int ttl = static_cast<int>(options_.max_ttl.count());
        if (status == ARES_SUCCESS && info) {
            for (auto* n = info->nodes; n; n = n->ai_next) {
                const std::string a = numeric(n->ai_addr);
                if (!a.empty() && std::find(r.addresses.begin(), r.addresses.end(), a) == r.addresses.end()) {
                    r.addresses.push_back(a);
                    ttl = std::min(ttl, std::max(0, n->ai_ttl));
                }
            }
        }
        const TimePoint now = loop_.now();
        if (r.addresses.empty()) {
            r.error = status == ARES_SUCCESS ? "no address for this name" : ares_strerror(status);
            e.expires = now + options_.negative_ttl;
            if (!e.failing) {
                log_->warn(
                    "cannot resolve host {}: {}; sessions to it retry with backoff (logged once until it resolves)",
                    host, r.error);
            }
            e.failing = true;
        } else {
            const auto keep =
                std::clamp<std::chrono::seconds>(std::chrono::seconds(ttl), options_.min_ttl, options_.max_ttl);
            e.expires = now + keep;
            if (e.failing) log_->info("host {} resolves again: {}", host, r.addresses.front());
            e.failing = false;
        }
        e.result = r;
        auto waiting = std::move(e.waiting);
        e.waiting.clear();
        for (auto& done : waiting) {
            if (in_resolve_) {
                answer_soon(r, std::move(done));
            } else {
                done(r);
            }
        }
    }

    Loop& loop_;
    ResolverOptions options_;
    ares_channel channel_ = nullptr;
    std::map<std::string, Entry> cache_;
    std::map<int, std::unique_ptr<Watcher>> watchers_;
    std::vector<std::unique_ptr<Watcher>> retired_;  // closed sockets' watchers, freed on the next timer
    std::deque<std::pair<Resolution, Callback>> ready_;
    bool in_resolve_ = false;
    std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

std::unique_ptr<Resolver> make_cares_resolver(Loop& loop, const ResolverOptions& options, std::string* error) {
    auto r = std::make_unique<CaresResolver>(loop, options);
    if (!r->init(error)) return nullptr;
    return r;
}

}  // namespace fieldlink::north
