// Metrics, health and a read-only status page over HTTP (libmicrohttpd, from Debian), on the
// address `gateway.http` names (loopback unless told otherwise). GET and HEAD only.
//
// Bounded, whoever connects: at most kMaxConnections at once (more are refused and counted;
// kMaxPerIp from one address, so one host cannot lock the others out), kHeaderBytes of request
// line and headers per connection (more: 431), kIdleSeconds without progress closes a connection,
// and one event thread serves them all, so a slow client (slowloris) holds one slot, never the
// others' answers. Running out of descriptors is logged once per episode.
//
//   /metrics     Prometheus text: the north side's metrics.prom (sessions, queues, drops, writes,
//                store), per device poll and error counters, build info
//   /healthz     200 when ready, every bus worker alive and the store writable; else 503, with
//                what is wrong, as JSON
//   /api/status  status.json (what `fieldlink status` reads): sessions, queues, devices with the
//                latest value of every point
//   /api/runtime buses and their devices' poll states and counters, and the recent warnings
//   /            the status page: the above, refreshed every second
// Nothing served carries a secret: keys, tokens and passwords are in no status file, counter or
// log line.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace fieldlink {

struct WebSources {
    std::string data_dir;                         // status.json and metrics.prom
    std::function<std::string()> runtime_json;    // /api/runtime
    std::function<std::string()> device_metrics;  // Prometheus lines of the bus workers
    // /healthz: empty when healthy, else what is wrong
    std::function<std::string()> unhealthy;
};

class WebServer {
  public:
    static constexpr unsigned kMaxConnections = 64;
    static constexpr unsigned kMaxPerIp = 32;
    static constexpr std::size_t kHeaderBytes = std::size_t{16} * 1024;
    static constexpr unsigned kIdleSeconds = 10;

    // Listens on host:port and serves from a thread of its own; nullptr with `error` when the
    // address cannot be bound.
    static std::unique_ptr<WebServer> start(const std::string& host, int port, WebSources sources, std::string* error);
    // A reload: the handlers wait for pause() (requests meanwhile get 503 "reloading") and read
    // the new sources after resume(). The listening socket stays.
    void pause();
    void resume(WebSources sources);
    const std::string& host() const;
    int port() const;
    // Stops at any moment (even right after start): no request runs after it returns.
    ~WebServer();
    WebServer(const WebServer&) = delete;
    WebServer& operator=(const WebServer&) = delete;

    struct Impl;  // (web.cpp)

  private:
    explicit WebServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace fieldlink
