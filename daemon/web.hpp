// Metrics, health and a read-only status page over HTTP (cpp-httplib, from Debian), on the
// address `gateway.http` names (loopback unless told otherwise). GET and HEAD only.
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
    // Listens on host:port and serves from a thread of its own; nullptr with `error` when the
    // address cannot be bound.
    static std::unique_ptr<WebServer> start(const std::string& host, int port, WebSources sources, std::string* error);
    ~WebServer();
    WebServer(const WebServer&) = delete;
    WebServer& operator=(const WebServer&) = delete;

  private:
    struct Impl;
    explicit WebServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace fieldlink
