#include "app.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <vector>

#include "bus/bus_worker.hpp"
#include "core/config_parser.hpp"
#include "core/log.hpp"
#include "core/plan.hpp"
#include "core/plugin_host.hpp"
#include "north/north.hpp"

namespace fieldlink {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitConfig = 2;

int print_errors(const std::string& file, const std::vector<core::ConfigError>& errors) {
    for (const auto& e : errors) std::cerr << core::format_error(file, e) << '\n';
    std::cerr << file << ": " << errors.size() << (errors.size() == 1 ? " error" : " errors")
              << "; the configuration was not accepted\n";
    return kExitConfig;
}

std::size_t point_count(const core::Config& cfg) {
    std::size_t n = 0;
    for (const auto& d : cfg.devices) n += d.points.size();
    return n;
}

// One socket per cloud session: raise the soft descriptor limit to the hard one.
void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// Runs until SIGTERM/SIGINT. Returns the exit status.
int serve(const core::Config& cfg, const core::PluginRegistry& plugins) {
    auto log = core::logger("core");
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);  // before any thread starts: only signalfd sees them
    signal(SIGPIPE, SIG_IGN);
    const int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    raise_fd_limit();

    north::North north(cfg);
    std::string err;
    if (!north.start(&err)) {
        log->error("{}", err);
        return kExitRuntime;
    }
    std::vector<std::unique_ptr<bus::BusWorker>> workers;
    for (std::size_t b = 0; b < cfg.buses.size(); ++b) {
        auto driver = core::DriverInstance::create(plugins.find(cfg.buses[b].driver), cfg.buses[b], &err);
        if (!driver) {
            log->error("bus {}: driver {} refused its options: {}", cfg.buses[b].name, cfg.buses[b].driver, err);
            return kExitConfig;
        }
        workers.push_back(std::make_unique<bus::BusWorker>(cfg, b, std::move(driver),
                                                           [&north](core::SampleBatch&& batch) { return north.push(std::move(batch)); }));
    }
    for (auto& w : workers) w->start();
    log->info("fieldlinkd running: {} bus(es), {} device(s), {} point(s)", cfg.buses.size(), cfg.devices.size(),
              point_count(cfg));
    sd_notify(0, "READY=1\nSTATUS=polling");

    std::uint64_t watchdog_usec = 0;
    const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
    const int timeout_ms = watchdog ? static_cast<int>(watchdog_usec / 2000) : -1;
    for (;;) {
        pollfd p{sfd, POLLIN, 0};
        const int n = poll(&p, 1, timeout_ms);
        if (watchdog) sd_notify(0, "WATCHDOG=1");
        if (n <= 0) continue;
        signalfd_siginfo si{};
        if (read(sfd, &si, sizeof si) != sizeof si) continue;
        if (si.ssi_signo == SIGHUP) {
            log->warn("SIGHUP: live reload is not implemented yet; restart the service to apply a new configuration");
            continue;
        }
        log->info("signal {}: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    sd_notify(0, "STOPPING=1");
    for (auto& w : workers) w->stop();
    north.stop(std::chrono::milliseconds(500));
    close(sfd);
    return kExitOk;
}

}  // namespace

int run_daemon(const DaemonOptions& opts) {
    auto parsed = core::parse_config_file(opts.config_file);
    if (!parsed.ok()) return print_errors(opts.config_file, parsed.errors);
    core::Config& cfg = parsed.config;
    core::init_logging(opts.log_level.empty() ? cfg.gateway.log_level : opts.log_level);

    core::PluginRegistry plugins;
    const std::string dir = !opts.plugin_dir.empty() ? opts.plugin_dir
                            : !cfg.gateway.plugin_dir.empty() ? cfg.gateway.plugin_dir
                                                              : core::default_plugin_dir();
    std::vector<std::string> plugin_errors;
    plugins.load_dir(dir, plugin_errors);
    for (const auto& e : plugin_errors) std::cerr << "warning: " << e << '\n';
    std::vector<core::ConfigError> errors;
    plugins.validate_buses(cfg, errors);
    if (!errors.empty()) return print_errors(opts.config_file, errors);

    if (opts.plan) {
        for (const auto& d : cfg.devices) {
            const auto& bus = cfg.buses[d.bus_index];
            std::cout << core::describe_plan(d, core::plan_reads(d.points, core::cost_model_for(bus, d.max_gap)));
        }
    }
    if (opts.check) {
        std::cout << opts.config_file << ": configuration OK: " << cfg.clouds.size() << " cloud(s), "
                  << cfg.buses.size() << " bus(es), " << cfg.devices.size() << " device(s), " << point_count(cfg)
                  << " point(s)\n";
        return kExitOk;
    }
    if (opts.plan) return kExitOk;
    return serve(cfg, plugins);
}

}  // namespace fieldlink
