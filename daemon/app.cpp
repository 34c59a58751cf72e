#include "app.hpp"

#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <csignal>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bus/bus_worker.hpp"
#include "bus/plan.hpp"
#include "bus/plugin_host.hpp"
#include "config/diff.hpp"
#include "config/parser.hpp"
#include "core/clock.hpp"
#include "core/dir_lock.hpp"
#include "core/figures.hpp"
#include "core/log.hpp"
#include "core/low_fds.hpp"
#include "core/systemd.hpp"
#include "load.hpp"
#include "north/north.hpp"
#include "platforms/platform.hpp"
#include "pushed.hpp"
#include "serve/server.hpp"
#include "web.hpp"

namespace fieldlink {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitConfig = 2;

int print_errors(const std::string& file, const std::vector<std::string>& errors) {
    for (const auto& e : errors) std::cerr << e << '\n';
    std::cerr << file << ": " << errors.size() << (errors.size() == 1 ? " error" : " errors")
              << "; the configuration was not accepted\n";
    return kExitConfig;
}

std::size_t point_count(const config::Config& cfg) {
    std::size_t n = 0;
    for (const auto& d : cfg.devices) n += d.points.size();
    return n;
}

// Descriptors a configuration needs: a session holds 1 (its socket; 3 where libmosquitto's
// wake-up socket pair could not be refused), a bus 2 (its link, and a duplicate while it is
// given back), plus the numbers reserved below FD_SETSIZE and a fixed allowance (store files,
// event loop, resolver, logging, plugins).
struct DescriptorBudget {
    std::size_t sessions = 0;
    std::size_t per_session = 1;
    std::size_t buses = 0;
    std::size_t reserved = 0;
    std::size_t http = 0;  // the status server's connections at most, and its own two (listen, epoll)
    static constexpr std::size_t kPerBus = 2;
    static constexpr std::size_t kFixed = 64;
    std::size_t needed() const { return sessions * per_session + buses * kPerBus + reserved + http + kFixed; }
};

// Numbers below FD_SETSIZE for the buses' select()-based library: two per bus (a link and its
// reconnection), at least 16.
std::size_t low_fds_wanted(const config::Config& cfg) {
    return std::max<std::size_t>(16, 2 * cfg.buses.size());
}

// Raises the soft descriptor limit to the hard one; refuses a configuration that needs more
// than the hard limit allows, saying how many and how to raise it.
std::string descriptor_problem(const config::Config& cfg, const std::string& file) {
    DescriptorBudget b;
    auto profiles = platforms::make_profiles(cfg);
    b.sessions = north::plan_sessions(cfg, profiles).size();
    b.per_session = static_cast<std::size_t>(north::descriptors_per_client());
    b.buses = cfg.buses.size();
    b.reserved = low_fds_wanted(cfg);
    b.http = cfg.gateway.http_port > 0 ? WebServer::kMaxConnections + 2 : 0;
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return {};
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_max == RLIM_INFINITY || b.needed() <= rl.rlim_max) return {};
    std::ostringstream o;
    o << file << ": this configuration needs about " << b.needed() << " file descriptors (" << b.sessions
      << " cloud session(s) x " << b.per_session << " + " << b.buses << " bus(es) x " << DescriptorBudget::kPerBus
      << " + " << b.reserved << " reserved below FD_SETSIZE + " << b.http << " for HTTP + " << DescriptorBudget::kFixed
      << "), but the hard limit (RLIMIT_NOFILE) of this process is " << rl.rlim_max
      << "; raise it with LimitNOFILE=" << b.needed() << " in the systemd unit (or ulimit -Hn " << b.needed()
      << " in the shell that starts fieldlinkd)";
    return o.str();
}

// Everything that runs for one configuration: the north loop and one worker per bus.
struct Running {
    std::unique_ptr<core::DirLock> data_dir_lock;  // one daemon per data_dir; released last
    std::unique_ptr<north::North> north;
    std::vector<std::unique_ptr<bus::BusWorker>> workers;  // in the order of cfg->buses
    std::unique_ptr<WebServer> web;                        // stopped first: its handlers read the workers and north
    // The local Modbus TCP server and the latest values it serves; the workers' sinks fill the
    // cache (std::atomic_load: a reload replaces it while they run).
    std::shared_ptr<serve::Cache> cache;
    std::unique_ptr<serve::Server> modbus;
    // The writer (on the north thread) reads these while a reload replaces them.
    std::mutex mutex;
    const config::Config* cfg = nullptr;  // guarded by mutex
    bool reloading = false;               // guarded by mutex: writes are refused meanwhile
};

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// A bus worker that has not shown progress for this long is not alive (/healthz).
constexpr std::int64_t kWorkerAliveMs = 30'000;

// The first bus whose worker has shown no progress for longer than `limit_ms` (the watchdog and
// /healthz ask the same question with different limits): its name and how long, or nullopt.
std::optional<std::pair<std::string, std::int64_t>> quiet_worker(
    const std::vector<std::pair<std::string, bus::BusWorker::Heartbeat>>& beats, std::int64_t limit_ms) {
    const auto now = steady_ms();
    for (const auto& [name, beat] : beats) {
        if (const auto quiet = now - beat->load(); quiet > limit_ms) return std::make_pair(name, quiet);
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, bus::BusWorker::Heartbeat>> heartbeats(const Running& run) {
    std::vector<std::pair<std::string, bus::BusWorker::Heartbeat>> beats;
    for (const auto& w : run.workers) beats.emplace_back(w->bus_name(), w->heartbeat());
    return beats;
}

// One device of /api/runtime: its state and figures (bus::figures::kDevice).
nlohmann::json device_json(const config::Config& cfg, const bus::BusWorker& w, std::size_t i) {
    const auto& c = w.counters(i);
    const auto& dc = cfg.devices[w.device_index(i)];
    nlohmann::json dev{{"name", dc.name}, {"unit", dc.unit}, {"state", bus::device_state_name(c.state.load())}};
    for (const auto& f : bus::figures::kDevice) {
        if (!f.status.empty()) dev[std::string(f.status)] = core::figure_value(c.*(f.field));
    }
    dev["errors"] = c.crc_errors.load() + c.exceptions.load() + c.protocol_errors.load() + c.link_errors.load();
    return dev;
}

// Each line's measured use: the share of the last window spent in requests, and in all.
std::string bus_metrics(const Running& run) {
    std::string out = core::metric_header("fieldlink_bus_utilisation", core::MetricType::gauge,
                                          "Share of the last 5 s or more the line spent in requests (0..1).");
    for (const auto& w : run.workers) {
        out += core::metric_line("fieldlink_bus_utilisation", "bus=" + core::metric_label(w->bus_name()),
                                 w->utilisation());
    }
    out += core::metric_header("fieldlink_bus_busy_seconds_total", core::MetricType::counter,
                               "Time the line spent in requests, replies and timeouts.");
    for (const auto& w : run.workers) {
        out += core::metric_line("fieldlink_bus_busy_seconds_total", "bus=" + core::metric_label(w->bus_name()),
                                 w->busy_seconds());
    }
    return out;
}

// The bus side of /metrics, live (not from metrics.prom: a disk that refuses writes leaves that
// file as it was): each family's header, then its lines for every bus or device.
std::string device_metrics(const config::Config& cfg, const Running& run) {
    std::string out =
        core::metric_header("fieldlink_disk_writable", core::MetricType::gauge,
                            "1 when the disk takes the store's and the status files' writes.") +
        core::metric_line("fieldlink_disk_writable", "", std::uint64_t{run.north->disk_problem().empty()});
    out += core::metric_header("fieldlink_bus_driver_events_total", core::MetricType::counter,
                               "Events the bus driver counts (late replies, discarded bytes, ...), by event.");
    for (const auto& w : run.workers) {
        for (const auto& c : w->driver_counters()) {
            out += core::metric_line(
                "fieldlink_bus_driver_events_total",
                "bus=" + core::metric_label(w->bus_name()) + ",event=" + core::metric_label(c.name), c.value);
        }
    }
    out += bus_metrics(run);
    std::vector<const bus::DeviceCounters*> devices;
    std::vector<std::string> labels;
    for (const auto& w : run.workers) {
        for (std::size_t i = 0; i < w->device_count(); ++i) {
            devices.push_back(&w->counters(i));
            labels.push_back("device=" + core::metric_label(cfg.devices[w->device_index(i)].name) +
                             ",bus=" + core::metric_label(w->bus_name()));
        }
    }
    core::print_families(
        bus::figures::kDevice, labels,
        [&devices](const auto& f, std::size_t i) { return core::figure_value(devices[i]->*(f.field)); },
        [&out](const std::string& text) { out += text; });
    if (run.modbus) {
        const auto& counters = run.modbus->counters();
        core::print_families(
            serve::figures::kServer, {""},
            [&counters](const auto& f, std::size_t) { return core::figure_value(counters.*(f.field)); },
            [&out](const std::string& text) { out += text; });
    }
    out += core::metric_header("fieldlink_device_up", core::MetricType::gauge, "1 when the device's unit answers.");
    for (std::size_t i = 0; i < devices.size(); ++i) {
        out += core::metric_line("fieldlink_device_up", labels[i], std::uint64_t{devices[i]->state.load() == 1});
    }
    return out;
}

// What the HTTP server serves besides the north side's files: the bus workers' view.
// Every bus worker's figures and its devices' (/api/runtime, diagnostics requests).
nlohmann::json buses_json(const config::Config& cfg, const Running& run) {
    nlohmann::json buses = nlohmann::json::array();
    const auto now = steady_ms();
    for (const auto& w : run.workers) {
        const auto& bc = std::find_if(cfg.buses.begin(), cfg.buses.end(),
                                      [&w](const config::BusConfig& b) { return b.name == w->bus_name(); });
        nlohmann::json devices = nlohmann::json::array();
        for (std::size_t i = 0; i < w->device_count(); ++i) devices.push_back(device_json(cfg, *w, i));
        nlohmann::json driver_counters = nlohmann::json::object();
        for (const auto& c : w->driver_counters()) driver_counters[c.name] = c.value;
        buses.push_back({{"name", w->bus_name()},
                         {"driver", bc != cfg.buses.end() ? bc->driver : std::string()},
                         {"driver_counters", std::move(driver_counters)},
                         {"utilisation", std::round(w->utilisation() * 1000.0) / 1000.0},
                         {"busy_s", std::round(w->busy_seconds() * 1000.0) / 1000.0},
                         {"alive", now - w->heartbeat()->load() <= kWorkerAliveMs},
                         {"devices", std::move(devices)}});
    }
    return buses;
}

WebSources web_sources(const config::Config& cfg, const Running& run) {
    WebSources src;
    src.data_dir = cfg.gateway.status_path();
    src.runtime_json = [&cfg, &run] {
        nlohmann::json buses = buses_json(cfg, run);
        nlohmann::json doc{{"buses", std::move(buses)}, {"problems", core::recent_problems()}};
        if (run.modbus) {
            nlohmann::json served{
                {"listen", cfg.gateway.modbus_server.host + ":" + std::to_string(cfg.gateway.modbus_server.port)}};
            for (const auto& f : serve::figures::kServer)
                served[std::string(f.status)] = (run.modbus->counters().*(f.field)).load();
            doc["modbus_server"] = std::move(served);
        }
        return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    src.device_metrics = [&cfg, &run] { return device_metrics(cfg, run); };
    src.unhealthy = [&run]() -> std::string {
        if (!run.north->first_attempts_done()) return "starting: sessions are making their first connection attempts";
        if (const auto quiet = quiet_worker(heartbeats(run), kWorkerAliveMs)) {
            return "bus " + quiet->first + ": its worker is stuck";
        }
        if (std::string disk = run.north->disk_problem(); !disk.empty()) return disk;
        return {};
    };
    return src;
}

std::chrono::milliseconds watchdog_period() {
    std::uint64_t usec = 0;
    if (!core::systemd::watchdog(&usec)) return std::chrono::milliseconds(0);
    return std::chrono::milliseconds(std::max<std::uint64_t>(usec / 1000, 1));
}

// The watchdog's question: which bus worker made no progress for a period. The heartbeats are
// copied, so the watchdog may still ask while a reload replaces the workers.
std::function<std::string()> stuck_check(const Running& run) {
    const auto period = watchdog_period();
    if (period.count() == 0) return {};
    return [beats = heartbeats(run), period]() -> std::string {
        const auto quiet = quiet_worker(beats, period.count());
        if (!quiet) return {};
        return "bus " + quiet->first + ": its worker made no progress for " + std::to_string(quiet->second / 1000) +
               " s (stuck in its driver?)";
    };
}

// Writes from the platforms go to the worker owning the device's bus.
void route_write(Running& run, core::WriteJobPtr job) {
    std::unique_lock<std::mutex> lock(run.mutex);
    const auto bus =
        job->device < run.cfg->devices.size() ? run.cfg->devices[job->device].bus_index : config::kUnresolved;
    if (!run.reloading && bus < run.workers.size()) {
        run.workers[bus]->submit(std::move(job));
        return;
    }
    lock.unlock();
    core::refuse(job, "the gateway is reloading its configuration; try again");
}

// What a bus worker hands over: to the north side, and to the Modbus server's cache (a unit that
// stops answering makes its points' values not current).
bus::SampleSink sink_of(Running& run) {
    auto* north = run.north.get();
    return [north, &run](std::vector<core::SampleBatch>& batches) {
        if (const auto cache = std::atomic_load(&run.cache)) {
            for (const auto& b : batches) {
                if (b.kind == core::SampleBatch::Kind::samples) cache->put(b);
                if (b.kind == core::SampleBatch::Kind::device_down) cache->down(b.device_index);
            }
        }
        north->push(batches);
    };
}

// The Modbus server for `cfg` (none when it has no gateway.modbus_server). A reload's
// `previous` configuration hands its values over, and the server running goes on with the new
// map (the listen address is the same: same_gateway said so), its clients connected.
bool start_modbus_server(const config::Config& cfg, Running& run, const config::Config* previous) {
    std::shared_ptr<serve::Cache> cache;
    if (cfg.gateway.modbus_server.port != 0) {
        const auto old = std::atomic_load(&run.cache);
        cache = old && previous ? std::make_shared<serve::Cache>(cfg, *old, *previous)
                                : std::make_shared<serve::Cache>(cfg);
    }
    std::atomic_store(&run.cache, cache);
    if (run.modbus && cache && previous) {
        run.modbus->reconfigure(cfg, cache);
        return true;
    }
    run.modbus.reset();
    if (!cache) return true;
    run.modbus = std::make_unique<serve::Server>(cfg, cache,
                                                 [&run](core::WriteJobPtr job) { route_write(run, std::move(job)); });
    std::string err;
    if (run.modbus->start(&err)) return true;
    core::logger("core")->error("{}", err);
    run.modbus.reset();
    return false;
}

// The status server: kept across a restart by SIGHUP (same address), else started.
bool start_web(const config::Config& cfg, Running& run) {
    if (cfg.gateway.http_port == 0) return true;
    if (run.web) {
        run.web->resume(web_sources(cfg, run));
        return true;
    }
    std::string err;
    run.web = WebServer::start(cfg.gateway.http_host, cfg.gateway.http_port, web_sources(cfg, run), &err);
    if (!run.web) {
        core::logger("core")->error("{}", err);
        return false;
    }
    core::logger("core")->info("metrics, health and status page on http://{}:{}/", cfg.gateway.http_host,
                               cfg.gateway.http_port);
    return true;
}

// `channel`: where configurations pushed on a cloud's channel go (remote_config).
int start_all(const config::Config& cfg, const bus::PluginRegistry& plugins, Running& run,
              const std::function<void(const std::string&, north::ConfigPush)>& channel = {}) {
    auto log = core::logger("core");
    const std::size_t low = core::LowFds::instance().reserve(low_fds_wanted(cfg));
    if (low < cfg.buses.size()) {
        log->warn(
            "only {} descriptor numbers below FD_SETSIZE could be reserved for {} bus(es); a bus that "
            "reconnects may have to wait for one (restart the daemon to reserve more)",
            low, cfg.buses.size());
    }
    std::string err;
    // (a previous instance may still be stopping: a restart by systemd)
    run.data_dir_lock = core::DirLock::acquire(cfg.gateway.data_dir, std::chrono::seconds(5), &err);
    if (!run.data_dir_lock) {
        log->error("{}", err);
        return kExitRuntime;
    }
    if (!err.empty()) log->warn("{}", err);
    err.clear();
    run.north = std::make_unique<north::North>(cfg, platforms::make_profiles(cfg));
    for (std::size_t b = 0; b < cfg.buses.size(); ++b) {
        auto driver = bus::DriverInstance::create(plugins.find(cfg.buses[b].driver), cfg.buses[b], &err);
        if (!driver) {
            log->error("bus {}: driver {} refused its options: {}", cfg.buses[b].name, cfg.buses[b].driver, err);
            return kExitConfig;
        }
        run.workers.push_back(std::make_unique<bus::BusWorker>(cfg, b, std::move(driver), sink_of(run)));
    }
    {
        std::lock_guard<std::mutex> lock(run.mutex);
        run.cfg = &cfg;
        run.reloading = false;
    }
    run.north->set_writer([&run](core::WriteJobPtr job) { route_write(run, std::move(job)); });
    // The service manager's watchdog: pinged from the north loop while every bus worker beats.
    if (const auto period = watchdog_period(); period.count() > 0) run.north->set_watchdog(period, stuck_check(run));
    if (channel) run.north->set_config_channel(channel);
    // Diagnostics requests read the workers on the north thread while a reload may replace them.
    run.north->set_bus_stats([&run] {
        std::lock_guard<std::mutex> lock(run.mutex);
        if (run.reloading || run.cfg == nullptr) return std::string(R"({"reloading":true})");
        return nlohmann::json{{"buses", buses_json(*run.cfg, run)}}.dump(-1, ' ', false,
                                                                         nlohmann::json::error_handler_t::replace);
    });
    if (!run.north->start(&err)) {
        log->error("{}", err);
        return kExitRuntime;
    }
    if (!start_modbus_server(cfg, run, nullptr)) return kExitRuntime;
    for (auto& w : run.workers) w->start();
    if (!start_web(cfg, run)) return kExitRuntime;
    log->info("fieldlinkd running: {} bus(es), {} device(s), {} point(s)", cfg.buses.size(), cfg.devices.size(),
              point_count(cfg));
    return kExitOk;
}

// `keep_web`: the HTTP server stays (paused: its handlers read the workers and north), for a
// restart that leaves its address as it is.
void stop_all(Running& run, bool keep_web = false) {
    if (keep_web && run.web) {
        run.web->pause();
    } else {
        run.web.reset();
    }
    run.modbus.reset();                     // its clients' writes are refused from now on
    for (auto& w : run.workers) w->stop();  // first: no new samples
    {
        std::lock_guard<std::mutex> lock(run.mutex);
        run.workers.clear();
    }
    if (run.north) run.north->stop(std::chrono::milliseconds(500));  // what is left stays in the store
    run.north.reset();
    run.data_dir_lock.reset();
}

std::size_t index_of_bus(const config::Config& cfg, const std::string& name) {
    for (std::size_t b = 0; b < cfg.buses.size(); ++b) {
        if (cfg.buses[b].name == name) return b;
    }
    return config::kUnresolved;
}

enum class Reload { applied, restart, refused };

// TLS files are checked before anything stops: a certificate that cannot be loaded is refused
// like a configuration error.
bool tls_files_load(const config::Config& next, std::string* why) {
    north::TlsContexts check;
    std::string err;
    if (check.load(next, &err)) return true;
    core::logger("core")->error("SIGHUP: {}; still running the previous configuration", err);
    *why = err;
    return false;
}

// The index in `next` of the bus named `name` when its settings are those it has in `cfg`;
// kUnresolved when it changed or is gone.
std::size_t unchanged_bus(const config::Config& cfg, const config::Config& next, const std::string& name) {
    const std::size_t b = index_of_bus(next, name);
    const std::size_t was = index_of_bus(cfg, name);
    if (b == config::kUnresolved || was == config::kUnresolved) return config::kUnresolved;
    return config::same_bus(cfg.buses[was], next.buses[b]) ? b : config::kUnresolved;
}

// The bus side of a reload. Workers for new and changed buses are made first (a driver refusing
// its options changes nothing); workers of unchanged buses wait between two requests (one stuck
// in its driver for 5 s is replaced instead). Nothing stops before commit(); a refusal gives the
// old workers back, running.
class BusSwap {
  public:
    BusSwap(Running& run, const config::Config& cfg, const config::Config& next, const bus::PluginRegistry& plugins)
        : run_(run),
          cfg_(cfg),
          next_(next),
          plugins_(plugins),
          workers_(next.buses.size()),
          kept_(next.buses.size(), false),
          origin_(next.buses.size(), 0) {}

    bool prepare() {
        {
            std::lock_guard<std::mutex> lock(run_.mutex);
            old_ = std::move(run_.workers);
            run_.workers.clear();
        }
        for (const auto& w : old_) {
            if (const std::size_t b = unchanged_bus(cfg_, next_, w->bus_name()); b != config::kUnresolved) {
                kept_[b] = true;
            }
        }
        for (std::size_t b = 0; b < next_.buses.size(); ++b) {
            if (!kept_[b] && !make_worker(b)) return give_back();
        }
        return pause_kept();
    }
    // Replaced and removed buses stop; the new set is installed (not started).
    void commit() {
        for (auto& w : old_) {
            if (w) w->stop();
        }
        old_.clear();
        std::lock_guard<std::mutex> lock(run_.mutex);
        run_.workers = std::move(workers_);
        run_.cfg = &next_;
        run_.reloading = true;
    }
    // Kept workers move to the new configuration and resume; new ones start. Returns how many were kept.
    std::size_t start() {
        std::size_t kept = 0;
        for (std::size_t b = 0; b < next_.buses.size(); ++b) {
            auto& w = *run_.workers[b];
            if (kept_[b]) {
                w.rebase(next_, b);
                w.resume();
                ++kept;
            } else {
                w.start();
            }
        }
        return kept;
    }
    const std::string& refusal() const { return refusal_; }

  private:
    bool make_worker(std::size_t b) {
        std::string err;
        auto driver = bus::DriverInstance::create(plugins_.find(next_.buses[b].driver), next_.buses[b], &err);
        if (!driver) {
            core::logger("core")->error(
                "SIGHUP: bus {}: driver {} refused its options: {}; still running the previous configuration",
                next_.buses[b].name, next_.buses[b].driver, err);
            refusal_ =
                "bus " + next_.buses[b].name + ": driver " + next_.buses[b].driver + " refused its options: " + err;
            return false;
        }
        workers_[b] = std::make_unique<bus::BusWorker>(next_, b, std::move(driver), sink_of(run_));
        return true;
    }
    bool pause_kept() {
        for (std::size_t i = 0; i < old_.size(); ++i) {
            auto& w = old_[i];
            const std::size_t b = index_of_bus(next_, w->bus_name());
            if (b == config::kUnresolved || !kept_[b]) continue;
            if (w->pause(std::chrono::seconds(5))) {
                origin_[b] = i;
                workers_[b] = std::move(w);
                continue;
            }
            core::logger("core")->warn("SIGHUP: bus {}: its worker did not pause within 5 s; it is replaced",
                                       next_.buses[b].name);
            kept_[b] = false;
            if (make_worker(b)) continue;
            for (std::size_t k = 0; k < workers_.size(); ++k) {
                if (kept_[k]) old_[origin_[k]] = std::move(workers_[k]);
            }
            return give_back();
        }
        return true;
    }
    bool give_back() {
        for (auto& w : old_) {
            if (w) w->resume();
        }
        std::lock_guard<std::mutex> lock(run_.mutex);
        run_.workers = std::move(old_);
        return false;
    }

    Running& run_;
    const config::Config& cfg_;
    const config::Config& next_;
    const bus::PluginRegistry& plugins_;
    std::vector<std::unique_ptr<bus::BusWorker>> workers_;  // by bus index of next_
    std::vector<bool> kept_;
    std::vector<std::size_t> origin_;  // a kept worker's place in old_
    std::vector<std::unique_ptr<bus::BusWorker>> old_;
    std::string refusal_;  // why prepare() refused
};

// A reload that restarts only what changed. `next` is aligned with `cfg` here, so every device
// keeps its index. Bus workers whose bus settings are unchanged are paused between two requests,
// moved to the new configuration (their unchanged devices keep state, counters and schedule)
// and resumed, their link open throughout; other buses get new workers. Sessions are kept or
// replaced by the north side (North::apply). `restart`: the gateway settings changed (store,
// DNS, HTTP), everything restarts; `refused`: nothing was changed.
Reload reload_in_place(Running& run, std::unique_ptr<config::Config>& cfg, std::unique_ptr<config::Config>& next,
                       const bus::PluginRegistry& plugins, std::string* why, const char* label) {
    auto log = core::logger("core");
    if (!config::same_gateway(cfg->gateway, next->gateway)) return Reload::restart;
    if (!tls_files_load(*next, why)) return Reload::refused;
    config::align_devices(*cfg, *next);
    const std::size_t low = core::LowFds::instance().reserve(low_fds_wanted(*next));
    if (low < next->buses.size()) log->warn("only {} descriptor numbers below FD_SETSIZE are reserved", low);
    BusSwap buses(run, *cfg, *next, plugins);
    if (!buses.prepare()) {
        *why = buses.refusal();
        return Reload::refused;
    }
    core::systemd::notify("RELOADING=1");
    buses.commit();
    const auto result = run.north->apply(*next, platforms::make_profiles(*next), stuck_check(run));
    if (!result.ok) {  // a TLS file changed since the check above
        log->error("{}: {}", label, result.error);
        std::lock_guard<std::mutex> lock(run.mutex);
        run.reloading = false;
        return Reload::restart;  // as at start: a cloud whose files cannot be loaded stops the daemon
    }
    // (the server moves to the new configuration before the old one goes)
    start_modbus_server(*next, run, cfg.get());
    const std::size_t buses_kept = buses.start();
    {
        std::lock_guard<std::mutex> lock(run.mutex);
        run.reloading = false;
    }
    cfg = std::move(next);
    log->info("{}: reloaded: {} session(s) kept connected, {} stopped, {} started; {} bus worker(s) kept, {} started",
              label, result.kept, result.stopped, result.started, buses_kept, cfg->buses.size() - buses_kept);
    return Reload::applied;
}

// Each shared serial line's bus time against its devices' intervals (bus::line_budgets). A line
// that cannot keep its schedule goes to `warn`, or, under gateway.strict, is returned as an error.
// With `print_all`, every line's figure is printed (`--plan`).
std::vector<std::string> check_line_budgets(const config::Config& cfg, const std::string& file, bool print_all,
                                            const std::function<void(const std::string&)>& warn) {
    std::vector<std::string> errors;
    for (const auto& b : bus::line_budgets(cfg)) {
        const std::string text = bus::describe_budget(cfg, b);
        if (print_all) std::cout << text << '\n';
        if (b.fits()) continue;
        const auto& bus = cfg.buses[b.bus_index];
        std::string message = text +
                              "; the line cannot keep its schedule: lengthen the intervals, raise the baud rate, "
                              "read fewer registers or split the line";
        if (cfg.gateway.strict) message += " (an error under gateway.strict)";
        const auto line = config::format_error(file, {bus.mark, "buses." + bus.name, message});
        if (cfg.gateway.strict) {
            errors.push_back(line);
        } else {
            warn(line);
        }
    }
    return errors;
}

// Loads and validates a configuration against the loaded plugins; errors go to `report`.
std::unique_ptr<config::Config> load_config(const std::string& file, const bus::PluginRegistry& plugins,
                                            const std::function<void(const std::string&)>& report) {
    auto loaded = load_config_file(file, &plugins);
    for (const auto& e : loaded.errors) report(config::format_error(file, e));
    if (!loaded.ok()) return nullptr;
    const auto over = check_line_budgets(loaded.config, file, false,
                                         [](const std::string& w) { core::logger("bus")->warn("{}", w); });
    for (const auto& e : over) report(e);
    if (!over.empty()) return nullptr;
    return std::make_unique<config::Config>(std::move(loaded.config));
}

// READY=1 once the configuration is loaded, the store recovered (both in start_all) and every
// session has made its first connection attempt, or after 10 s of attempts (thousands of sessions
// behind a slow network): a unit ordered After= this one starts against a gateway that is up.
void notify_ready(const Running& run) {
    if (!core::systemd::available()) return;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!run.north->first_attempts_done() && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    core::systemd::notify("READY=1\nSTATUS=polling");
}

// Puts the file a push replaced back as it was (removes it when the push created it).
bool put_back(const std::string& target, const std::optional<std::string>& before) {
    std::string why;
    if (before) {
        if (pushed::write_atomic(target, *before, &why)) return true;
    } else {
        std::error_code ec;
        if (std::filesystem::remove(target, ec) || !ec) return true;
        why = ec.message();
    }
    core::logger("core")->error("pushed configuration: cannot put {} back: {}", target, why);
    return false;
}

// At most `most` lines of `lines`, then how many more.
std::string joined(const std::vector<std::string>& lines, std::size_t most) {
    std::string text;
    for (std::size_t i = 0; i < lines.size() && i < most; ++i) {
        if (i) text += '\n';
        text += lines[i];
    }
    if (lines.size() > most) text += "\n(" + std::to_string(lines.size() - most) + " more)";
    return text;
}

// Versions of pushed configurations kept in data_dir/config-history (each with what it replaced).
constexpr std::size_t kKeepVersions = 10;

pushed::History history_of(const config::Config& cfg) {
    return {(std::filesystem::path(cfg.gateway.data_dir) / "config-history").string(), kKeepVersions};
}

// The running daemon: until SIGTERM/SIGINT; SIGHUP reloads the configuration file; a
// configuration pushed on a cloud's channel (remote_config) is checked, written, reloaded and,
// when its cloud does not connect again within the cloud's remote_config_deadline, rolled back.
class Daemon {
  public:
    Daemon(std::string file, std::unique_ptr<config::Config> cfg, const bus::PluginRegistry& plugins)
        : file_(std::move(file)), cfg_(std::move(cfg)), plugins_(plugins) {}
    ~Daemon() {
        if (push_fd_ >= 0) close(push_fd_);
    }
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    int run();

  private:
    enum class Outcome { applied, refused, restarted, failed };
    struct Verifying {
        std::string cloud;
        north::ConfigReport report;
        std::string target;
        std::optional<std::string> before;  // the replaced file's text (none: it did not exist)
        std::chrono::steady_clock::time_point deadline;
        double seconds = 0;  // the deadline, from when it was applied
    };

    int start();
    // `checked`: the configuration on disk, already loaded and checked (a push): not read again.
    Outcome reload(const char* why, std::vector<std::string>* errors,
                   std::unique_ptr<config::Config> checked = nullptr);
    int restart(std::unique_ptr<config::Config> next);
    void on_push(const std::string& cloud, const north::ConfigPush& push);
    std::vector<std::string> check_pushed(const std::string& cloud, const north::ConfigPush& push,
                                          const std::string& target, const std::string& label, Loaded& loaded);
    void apply_pushed(const std::string& cloud, north::ConfigReport r, const std::string& target,
                      std::optional<std::string> before, config::Config checked);
    void take_pushes();
    void check_verifying();
    void report(north::ConfigReport r);

    std::string file_;
    std::unique_ptr<config::Config> cfg_;
    const bus::PluginRegistry& plugins_;
    Running run_;
    int push_fd_ = -1;
    std::mutex pushes_mutex_;
    std::deque<std::pair<std::string, north::ConfigPush>> pushes_;  // guarded by pushes_mutex_
    std::optional<Verifying> verifying_;
    north::ConfigReport last_;  // the last push's report (data_dir/config-history/state.json)
    int exit_ = -1;             // set: stop with this status
};

int Daemon::start() {
    const int rc = start_all(*cfg_, plugins_, run_, [this](const std::string& cloud, north::ConfigPush p) {
        {
            const std::lock_guard<std::mutex> lock(pushes_mutex_);
            pushes_.emplace_back(cloud, std::move(p));
        }
        const std::uint64_t one = 1;
        (void)!write(push_fd_, &one, sizeof one);
    });
    if (rc != kExitOk) return rc;
    if (!last_.empty()) run_.north->report_config(last_);
    notify_ready(run_);
    return kExitOk;
}

// Everything stops and starts again with `next` (its gateway settings changed). A failure to
// start is returned; the caller decides (a pushed configuration is rolled back).
int Daemon::restart(std::unique_ptr<config::Config> next) {
    core::systemd::notify("RELOADING=1");
    core::logger("core")->info(
        "reloading {} (its gateway settings changed): everything restarts; queued data stays in the store and is "
        "replayed",
        file_);
    const bool same_http =
        next->gateway.http_port == cfg_->gateway.http_port && next->gateway.http_host == cfg_->gateway.http_host;
    stop_all(run_, same_http);
    cfg_ = std::move(next);
    return start();
}

// Reloads the configuration on disk: nothing changes when it has errors (`errors`) or a part
// refuses it; only what changed restarts, unless the gateway settings changed.
Daemon::Outcome Daemon::reload(const char* why, std::vector<std::string>* errors,
                               std::unique_ptr<config::Config> checked) {
    auto log = core::logger("core");
    auto next = checked ? std::move(checked) : load_config(file_, plugins_, [&](const std::string& e) {
        log->error("{}", e);
        errors->push_back(e);
    });
    if (!next) {
        log->error("{}: {} has errors; still running the previous configuration", why, file_);
        return Outcome::refused;
    }
    core::init_logging(next->gateway.log_level);
    if (run_.web) run_.web->pause();  // its handlers read the workers and the configuration
    std::string refusal;
    const auto how = reload_in_place(run_, cfg_, next, plugins_, &refusal, why);
    if (how != Reload::restart) {
        if (run_.web) run_.web->resume(web_sources(*cfg_, run_));
        if (how == Reload::applied) notify_ready(run_);
        if (how == Reload::refused) errors->push_back(refusal);
        return how == Reload::applied ? Outcome::applied : Outcome::refused;
    }
    return restart(std::move(next)) == kExitOk ? Outcome::restarted : Outcome::failed;
}

void Daemon::report(north::ConfigReport r) {
    r.at_ms = core::unix_ms_now();
    r.running = pushed::running_version(file_);
    std::string why;
    if (!history_of(*cfg_).save_state(r, &why)) core::logger("core")->warn("pushed configuration: {}", why);
    if (run_.north) run_.north->report_config(r);
    last_ = std::move(r);
    last_.reply_topic.clear();  // answered once
}

void Daemon::take_pushes() {
    std::uint64_t n = 0;
    (void)!read(push_fd_, &n, sizeof n);
    std::deque<std::pair<std::string, north::ConfigPush>> pushes;
    {
        const std::lock_guard<std::mutex> lock(pushes_mutex_);
        pushes.swap(pushes_);
    }
    for (auto& [cloud, push] : pushes) {
        if (exit_ >= 0) return;
        on_push(cloud, push);
    }
}

// A configuration pushed on `cloud`'s channel: checked as --check does, refused (nothing written,
// nothing restarted) or written atomically beside the running one and reloaded; then verified
// (check_verifying) until the cloud's channel is connected again.
void Daemon::on_push(const std::string& cloud, const north::ConfigPush& push) {
    auto log = core::logger("core");
    north::ConfigReport r;
    r.id = push.id;
    r.reply_topic = push.reply_topic;
    r.version = pushed::version_of(push.text);
    std::string why;
    const auto target = push.problem.empty() ? pushed::target_of(file_, push.file, &why) : std::nullopt;
    r.file =
        target ? std::filesystem::path(*target).lexically_relative(std::filesystem::path(file_).parent_path()).string()
               : push.file;
    const auto refuse = [&](const std::string& error) {
        log->error("pushed configuration {} from cloud {} refused; nothing was changed: {}", r.version, cloud, error);
        r.result = "refused";
        r.error = error;
        report(r);
    };
    if (!push.problem.empty()) return refuse(push.problem);
    if (!target) return refuse(why);
    // The same configuration again (a retained message after a reconnect, ThingsBoard's answer
    // to the gateway asking on connect): not applied again, one refused or rolled back not
    // retried, one being verified reported as such. Its last report goes again.
    if (r.version == last_.version && r.file == last_.file) {
        auto again = last_;
        again.reply_topic = push.reply_topic;  // (a platform awaiting an answer gets one)
        if (run_.north) run_.north->report_config(again);
        return;
    }
    if (verifying_) {
        return refuse("another pushed configuration (" + verifying_->report.version +
                      ") is being verified; push again once it is reported applied or rolled back");
    }
    std::string before_text;
    const bool existed = config::read_file(*target, before_text, &why);
    if (existed && before_text == push.text) {
        r.result = "unchanged";
        return report(r);
    }
    Loaded loaded;
    if (const auto errors = check_pushed(cloud, push, *target, r.file, loaded); !errors.empty()) {
        return refuse(joined(errors, 20));
    }
    pushed::History history = history_of(*cfg_);
    if ((existed && !history.save("before", *target, before_text, &why)) ||
        !history.save("pushed", *target, push.text, &why) || !pushed::write_atomic(*target, push.text, &why, true)) {
        return refuse("cannot write it: " + why);
    }
    std::optional<std::string> before;
    if (existed) before = std::move(before_text);
    log->info("pushed configuration {} from cloud {} written to {}; reloading", r.version, cloud, *target);
    apply_pushed(cloud, std::move(r), *target, std::move(before), std::move(loaded.config));
}

// Checks a push as --check checks the files as they would be with it, plus its own rules (no
// secret written out, its own channel kept). Every error, as --check prints them.
std::vector<std::string> Daemon::check_pushed(const std::string& cloud, const north::ConfigPush& push,
                                              const std::string& target, const std::string& label, Loaded& loaded) {
    std::vector<std::string> errors;
    for (const auto& e : pushed::literal_secrets(push.text, target)) errors.push_back(config::format_error(target, e));
    const Replacement instead{target, push.text};
    loaded = load_config_file(file_, &plugins_, &instead);
    for (const auto& e : loaded.errors) errors.push_back(config::format_error(file_, e));
    if (!loaded.ok()) return errors;
    for (auto& e : check_line_budgets(loaded.config, file_, false, [](const std::string&) {})) {
        errors.push_back(std::move(e));
    }
    if (auto problem = descriptor_problem(loaded.config, file_); !problem.empty()) errors.push_back(problem);
    const auto own = std::find_if(loaded.config.clouds.begin(), loaded.config.clouds.end(),
                                  [&](const config::CloudConfig& c) { return c.name == cloud; });
    if (own == loaded.config.clouds.end()) {
        errors.push_back(label + ": it has no cloud " + cloud +
                         ": the channel this configuration came on would be gone (refused; change that in the file "
                         "on the gateway)");
    } else if (!own->remote_config) {
        errors.push_back(config::format_error(file_, {own->mark_of("remote_config"), config::cloud_path(*own),
                                                      "it turns remote_config off for the cloud it came on: the "
                                                      "gateway could not be reached this way again (refused; change "
                                                      "that in the file on the gateway)"}));
    }
    return errors;
}

// A push written to `target`: reported as being verified (before the reload, while the channel's
// session is surely connected: a platform awaiting an answer to its request gets it now),
// reloaded from the configuration already checked, and verified (check_verifying); a reload that
// refuses it, or a restart that fails, puts the previous file back.
void Daemon::apply_pushed(const std::string& cloud, north::ConfigReport r, const std::string& target,
                          std::optional<std::string> before, config::Config checked) {
    r.result = "verifying";
    report(r);
    r.reply_topic.clear();
    std::vector<std::string> reload_errors;
    const auto how =
        reload("pushed configuration", &reload_errors, std::make_unique<config::Config>(std::move(checked)));
    if (how == Outcome::refused || how == Outcome::failed) {
        put_back(target, before);
        if (how == Outcome::failed) {  // it stopped everything and could not start again
            auto previous = load_config(file_, plugins_, [](const std::string&) {});
            if (!previous || restart(std::move(previous)) != kExitOk) {
                exit_ = kExitRuntime;
                return;
            }
            reload_errors.emplace_back(
                "the gateway could not start with it (see the log); the previous one runs again");
        }
        r.result = how == Outcome::failed ? "rolled back" : "refused";
        r.error = joined(reload_errors, 20);
        return report(r);
    }
    const config::CloudConfig* own = nullptr;
    for (const auto& c : cfg_->clouds) {
        if (c.name == cloud) own = &c;
    }
    const config::Duration deadline = own ? own->remote_config_deadline : config::Duration{60'000};
    verifying_ = Verifying{cloud,
                           r,
                           target,
                           std::move(before),
                           std::chrono::steady_clock::now() + deadline,
                           static_cast<double>(deadline.count()) / 1000.0};
    check_verifying();
}

// Applied once the channel's session is connected again; rolled back at the deadline.
void Daemon::check_verifying() {
    if (!verifying_ || !run_.north) return;
    auto log = core::logger("core");
    if (run_.north->channel_connected(verifying_->cloud)) {
        auto r = verifying_->report;
        const std::string cloud = verifying_->cloud;
        verifying_.reset();
        r.result = "applied";
        log->info("pushed configuration {} ({}) applied: cloud {} is connected", r.version, r.file, cloud);
        return report(r);
    }
    if (std::chrono::steady_clock::now() < verifying_->deadline) return;
    auto v = std::move(*verifying_);
    verifying_.reset();
    log->error("pushed configuration {}: cloud {} did not connect within its remote_config_deadline; rolling back",
               v.report.version, v.cloud);
    put_back(v.target, v.before);
    std::vector<std::string> errors;
    const auto how = reload("rollback", &errors);
    if (how == Outcome::failed) {
        exit_ = kExitRuntime;
        return;
    }
    v.report.result = "rolled back";
    v.report.error = fmt::format(
        "cloud {} did not connect within {:.0f} s of applying it (its remote_config_deadline); the previous "
        "configuration runs again",
        v.cloud, v.seconds);
    report(v.report);
}

int Daemon::run() {
    auto log = core::logger("core");
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);  // before any thread starts: only signalfd sees them
    signal(SIGPIPE, SIG_IGN);
    const int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    push_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    {
        if (auto state = history_of(*cfg_).load_state()) last_ = std::move(*state);
        if (last_.result == "verifying") {  // stopped while verifying: this file is what runs now
            last_.result = "applied";
            last_.error = "the gateway restarted while it was being verified";
        }
    }
    if (const int rc = start(); rc != kExitOk) {
        stop_all(run_);
        close(sfd);
        return rc;
    }
    malloc_trim(0);  // what loading the configuration freed (its YAML document) goes back to the system
    while (exit_ < 0) {
        pollfd p[2] = {{sfd, POLLIN, 0}, {push_fd_, POLLIN, 0}};
        const int timeout = verifying_ ? 200 : -1;
        if (poll(p, 2, timeout) < 0) continue;
        if (p[1].revents & POLLIN) take_pushes();
        check_verifying();
        if (!(p[0].revents & POLLIN)) continue;
        signalfd_siginfo si{};
        if (read(sfd, &si, sizeof si) != sizeof si) continue;
        if (si.ssi_signo != SIGHUP) {
            log->info("signal {}: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            exit_ = kExitOk;
            break;
        }
        std::vector<std::string> errors;
        if (reload("SIGHUP", &errors) == Outcome::failed) exit_ = kExitRuntime;
    }
    core::systemd::notify("STOPPING=1");
    stop_all(run_);
    close(sfd);
    return exit_;
}

}  // namespace

int run_daemon(const DaemonOptions& opts) {
    // Platform rules need no plugins: report those errors (and pick the log level) first.
    auto early = load_config_file(opts.config_file, nullptr);
    if (!early.ok()) {
        std::vector<std::string> errors;
        for (const auto& e : early.errors) errors.push_back(config::format_error(opts.config_file, e));
        return print_errors(opts.config_file, errors);
    }
    core::init_logging(opts.log_level.empty() ? early.config.gateway.log_level : opts.log_level);

    bus::PluginRegistry plugins;
    const std::string dir = !opts.plugin_dir.empty()                   ? opts.plugin_dir
                            : !early.config.gateway.plugin_dir.empty() ? early.config.gateway.plugin_dir
                                                                       : bus::default_plugin_dir();
    std::vector<std::string> plugin_errors;
    plugins.load_dir(dir, plugin_errors);
    for (const auto& e : plugin_errors) std::cerr << "warning: " << e << '\n';
    // The driver stage on the configuration already read (no second parse of a large file).
    plugins.validate_buses(early.config, early.errors);
    if (!early.ok()) {
        std::vector<std::string> errors;
        for (const auto& e : early.errors) errors.push_back(config::format_error(opts.config_file, e));
        return print_errors(opts.config_file, errors);
    }
    auto cfg = std::make_unique<config::Config>(std::move(early.config));
    if (opts.plan) {
        for (const auto& d : cfg->devices) {
            const auto& bus = cfg->buses[d.bus_index];
            std::cout << bus::describe_plans(d, bus::cost_model_for(bus, d.max_gap));
        }
    }
    const auto over = check_line_budgets(*cfg, opts.config_file, opts.plan,
                                         [](const std::string& w) { std::cerr << "warning: " << w << '\n'; });
    if (!over.empty()) return print_errors(opts.config_file, over);
    if (const auto problem = descriptor_problem(*cfg, opts.config_file); !problem.empty()) {
        std::cerr << problem << '\n';
        return kExitConfig;
    }
    if (opts.check) {
        std::cout << opts.config_file << ": configuration OK: " << cfg->clouds.size() << " cloud(s), "
                  << cfg->buses.size() << " bus(es), " << cfg->devices.size() << " device(s), " << point_count(*cfg)
                  << " point(s)\n";
        return kExitOk;
    }
    if (opts.plan) return kExitOk;
    Daemon daemon(opts.config_file, std::move(cfg), plugins);
    return daemon.run();
}

}  // namespace fieldlink
