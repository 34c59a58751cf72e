#include "app.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
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

int print_errors(const std::string& file, const std::vector<std::string>& errors) {
    for (const auto& e : errors) std::cerr << e << '\n';
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

// Everything that runs for one configuration: the north loop and one worker per bus.
struct Running {
    std::unique_ptr<north::North> north;
    std::vector<std::unique_ptr<bus::BusWorker>> workers;
};

int start_all(const core::Config& cfg, const core::PluginRegistry& plugins, Running& run) {
    auto log = core::logger("core");
    run.north = std::make_unique<north::North>(cfg);
    std::string err;
    if (!run.north->start(&err)) {
        log->error("{}", err);
        return kExitRuntime;
    }
    for (std::size_t b = 0; b < cfg.buses.size(); ++b) {
        auto driver = core::DriverInstance::create(plugins.find(cfg.buses[b].driver), cfg.buses[b], &err);
        if (!driver) {
            log->error("bus {}: driver {} refused its options: {}", cfg.buses[b].name, cfg.buses[b].driver, err);
            return kExitConfig;
        }
        auto* north = run.north.get();
        run.workers.push_back(std::make_unique<bus::BusWorker>(
            cfg, b, std::move(driver), [north](core::SampleBatch&& batch) { return north->push(std::move(batch)); }));
    }
    for (auto& w : run.workers) w->start();
    log->info("fieldlinkd running: {} bus(es), {} device(s), {} point(s)", cfg.buses.size(), cfg.devices.size(),
              point_count(cfg));
    return kExitOk;
}

void stop_all(Running& run) {
    for (auto& w : run.workers) w->stop();  // first: no new samples
    run.workers.clear();
    if (run.north) run.north->stop(std::chrono::milliseconds(500));  // what is left stays in the store
    run.north.reset();
}

// Parses and validates a configuration against the loaded plugins; errors go to `report`.
std::unique_ptr<core::Config> load_config(const std::string& file, const core::PluginRegistry& plugins,
                                          const std::function<void(const std::string&)>& report) {
    auto parsed = core::parse_config_file(file);
    if (parsed.ok()) plugins.validate_buses(parsed.config, parsed.errors);
    for (const auto& e : parsed.errors) report(core::format_error(file, e));
    if (!parsed.ok()) return nullptr;
    return std::make_unique<core::Config>(std::move(parsed.config));
}

// Runs until SIGTERM/SIGINT; SIGHUP reloads the configuration file. Returns the exit status.
int serve(const std::string& file, std::unique_ptr<core::Config> cfg, const core::PluginRegistry& plugins) {
    auto log = core::logger("core");
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);  // before any thread starts: only signalfd sees them
    signal(SIGPIPE, SIG_IGN);
    const int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    raise_fd_limit();

    Running run;
    if (const int rc = start_all(*cfg, plugins, run); rc != kExitOk) {
        stop_all(run);
        return rc;
    }
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
        if (si.ssi_signo != SIGHUP) {
            log->info("signal {}: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        // Reload: validate first; a bad file changes nothing.
        auto next = load_config(file, plugins, [&log](const std::string& e) { log->error("{}", e); });
        if (!next) {
            log->error("SIGHUP: {} has errors; still running the previous configuration", file);
            continue;
        }
        sd_notify(0, "RELOADING=1");
        log->info("SIGHUP: reloading {}; queued data stays in the store and is replayed", file);
        stop_all(run);
        cfg = std::move(next);
        core::init_logging(cfg->gateway.log_level);
        if (const int rc = start_all(*cfg, plugins, run); rc != kExitOk) {
            stop_all(run);
            close(sfd);
            return rc;
        }
        sd_notify(0, "READY=1\nSTATUS=polling");
    }
    sd_notify(0, "STOPPING=1");
    stop_all(run);
    close(sfd);
    return kExitOk;
}

}  // namespace

int run_daemon(const DaemonOptions& opts) {
    auto parsed = core::parse_config_file(opts.config_file);
    if (!parsed.ok()) {
        std::vector<std::string> errors;
        for (const auto& e : parsed.errors) errors.push_back(core::format_error(opts.config_file, e));
        return print_errors(opts.config_file, errors);
    }
    core::init_logging(opts.log_level.empty() ? parsed.config.gateway.log_level : opts.log_level);

    core::PluginRegistry plugins;
    const std::string dir = !opts.plugin_dir.empty() ? opts.plugin_dir
                            : !parsed.config.gateway.plugin_dir.empty() ? parsed.config.gateway.plugin_dir
                                                                        : core::default_plugin_dir();
    std::vector<std::string> plugin_errors;
    plugins.load_dir(dir, plugin_errors);
    for (const auto& e : plugin_errors) std::cerr << "warning: " << e << '\n';
    std::vector<std::string> errors;
    auto cfg = load_config(opts.config_file, plugins, [&errors](const std::string& e) { errors.push_back(e); });
    if (!cfg) return print_errors(opts.config_file, errors);
    if (opts.plan) {
        for (const auto& d : cfg->devices) {
            const auto& bus = cfg->buses[d.bus_index];
            std::cout << core::describe_plan(d, core::plan_reads(d.points, core::cost_model_for(bus, d.max_gap)));
        }
    }
    if (opts.check) {
        std::cout << opts.config_file << ": configuration OK: " << cfg->clouds.size() << " cloud(s), "
                  << cfg->buses.size() << " bus(es), " << cfg->devices.size() << " device(s), " << point_count(*cfg)
                  << " point(s)\n";
        return kExitOk;
    }
    if (opts.plan) return kExitOk;
    return serve(opts.config_file, std::move(cfg), plugins);
}

}  // namespace fieldlink
