// Name resolution off the event-loop thread's critical path: c-ares, driven by the north loop
// (its sockets in epoll, its timeouts in the timer heap), with a cache kept for each answer's
// TTL. One query per name however many sessions wait for it; a slow name delays only the
// sessions waiting for it. Numeric addresses never reach the resolver.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "north/loop.hpp"

namespace spdlog {
class logger;
}

namespace fieldlink::north {

struct Resolution {
    std::vector<std::string> addresses;  // numeric, in the resolver's order
    std::string error;                   // the resolver's answer when there is no address
};

class Resolver {
  public:
    using Callback = std::function<void(const Resolution&)>;
    virtual ~Resolver() = default;
    // Calls `done` (later, from the loop; never from inside this call) with the addresses of
    // `host`. Fresh cached answers and numeric addresses are answered on the next loop turn.
    virtual void resolve(const std::string& host, Callback done) = 0;
};

struct ResolverOptions {
    std::vector<std::string> servers;  // "ip[:port]"; empty: the system's (/etc/resolv.conf)
    std::chrono::milliseconds timeout{5000};
    int tries = 2;
    std::chrono::seconds min_ttl{5};  // floor for caching (TTL 0 would mean a query per session)
    std::chrono::seconds max_ttl{3600};
    std::chrono::seconds negative_ttl{5};  // failures are kept this long (sessions back off meanwhile)
};

// c-ares in the north loop. Returns nullptr with `error` when c-ares cannot start.
std::unique_ptr<Resolver> make_cares_resolver(Loop& loop, const ResolverOptions& options, std::string* error);

// True when `host` is a numeric IPv4 or IPv6 address.
bool is_numeric_address(const std::string& host);

}  // namespace fieldlink::north
