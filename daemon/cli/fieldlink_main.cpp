// fieldlink: companion tools. `token` prints a OneNET token, `simulate` runs a Modbus server,
// `check` validates a configuration (same as fieldlinkd --check), `ports` lists serial ports,
// `scan` finds the Modbus units on a line, `import` converts other gateways' register maps.
#include <CLI/CLI.hpp>

#include <ctime>
#include <iostream>

#include "app.hpp"
#include "cli/import.hpp"
#include "cli/parse.hpp"
#include "cli/ports.hpp"
#include "cli/scan.hpp"
#include "cli/simulator.hpp"
#include "cli/status.hpp"
#include "core/duration.hpp"
#include "load.hpp"
#include "platforms/onenet.hpp"

#ifndef FIELDLINK_VERSION
#define FIELDLINK_VERSION "0.0.0"
#endif

namespace {

struct TokenOptions {
    std::string product;
    std::string device;
    std::string key;
    std::string method = "sha256";
    std::int64_t expiry = 0;
    std::string ttl = "365d";
};

int run_token(const TokenOptions& o) {
    fieldlink::platforms::TokenRequest t;
    t.res = o.device.empty() ? fieldlink::platforms::onenet_product_res(o.product)
                             : fieldlink::platforms::onenet_device_res(o.product, o.device);
    t.method = o.method;
    t.key_base64 = o.key;
    if (o.expiry > 0) {
        t.expiry = o.expiry;
    } else {
        auto ttl = fieldlink::core::parse_duration(o.ttl);
        if (!ttl) {
            std::cerr << "fieldlink token: --ttl '" << o.ttl << "' is not a duration; expected e.g. 30d, 12h\n";
            return 2;
        }
        t.expiry = static_cast<std::int64_t>(std::time(nullptr)) + ttl->count() / 1000;
    }
    std::string err;
    auto token = fieldlink::platforms::onenet_token(t, &err);
    if (!token) {
        std::cerr << "fieldlink token: " << err << '\n';
        return 2;
    }
    std::cout << *token << '\n';
    return 0;
}

int run_simulate(fieldlink::cli::SimulatorOptions sim, const std::string& tick, const std::string& config,
                 bool units_given) {
    auto d = fieldlink::core::parse_duration(tick);
    if (!d || d->count() <= 0) {
        std::cerr << "fieldlink simulate: --tick expects a duration like 100ms\n";
        return 2;
    }
    sim.tick_ms = static_cast<long>(d->count());
    if (!config.empty()) {  // the configuration's devices, with plausible values in their points
        auto parsed = fieldlink::load_config_file(config, nullptr);
        if (!parsed.ok()) {
            for (const auto& e : parsed.errors) std::cerr << fieldlink::config::format_error(config, e) << '\n';
            std::cerr << "fieldlink simulate: " << config << " is not a valid configuration\n";
            return 2;
        }
        sim.presets = fieldlink::cli::presets_from(parsed.config);
        if (!units_given) sim.units = fieldlink::cli::units_of(parsed.config);
        if (sim.units.empty()) {
            std::cerr << "fieldlink simulate: " << config << " has no Modbus device\n";
            return 2;
        }
    }
    return fieldlink::cli::run_simulator(sim);
}

// The status files' directory: --data-dir, else the configuration's status_dir or data_dir.
int run_status(const std::string& config, std::string dir, bool values) {
    if (dir.empty() && !config.empty()) {
        auto parsed = fieldlink::load_config_file(config, nullptr);
        if (!parsed.ok()) {
            std::cerr << "fieldlink status: " << config << " is not a valid configuration (run fieldlink check)\n";
            return 2;
        }
        dir = parsed.config.gateway.status_path();
    }
    return fieldlink::cli::print_status(dir.empty() ? "/var/lib/fieldlink" : dir, values);
}

struct ImportOptions {
    std::string format, file, out, cloud = "cloud";
};

CLI::App* add_import(CLI::App& app, ImportOptions& o) {
    auto* import = app.add_subcommand("import", "turn another gateway's register maps into a fieldlink configuration");
    import->add_option("--from", o.format, "thingsboard (Modbus connector JSON) or neuron (tag export CSV)")
        ->required()
        ->check(CLI::IsMember({"thingsboard", "neuron"}));
    import->add_option("file", o.file, "the file to import")->required();
    import->add_option("-o,--output", o.out, "write the YAML here (default: standard output)");
    import->add_option("--cloud", o.cloud, "name of the cloud the devices publish to (default: cloud)");
    return import;
}

struct SimulateOptions {
    fieldlink::cli::SimulatorOptions server;
    std::string tick = "100ms";
    std::string config;
};

CLI::App* add_simulate(CLI::App& app, SimulateOptions& o) {
    auto& sim = o.server;
    auto* simulate = app.add_subcommand("simulate", "run a Modbus TCP/RTU server with simulated units");
    simulate->add_option("--tcp", sim.tcp, "listen on HOST:PORT (Modbus TCP)");
    simulate->add_option("--rtu", sim.rtu, "serve Modbus RTU on this serial device");
    simulate->add_option("--baud", sim.baud, "RTU line speed");
    simulate->add_option("--parity", sim.parity, "RTU parity: N, E or O (default N)")
        ->check(CLI::IsMember({'N', 'E', 'O'}));
    simulate->add_option("--vendor", sim.vendor, "VendorName in the device identification (FC 43/14)");
    simulate->add_option("--product", sim.product, "ProductCode in the device identification (FC 43/14)");
    sim.revision = FIELDLINK_VERSION;
    simulate->add_option("--units", sim.units, "unit ids to answer for")->delimiter(',');
    simulate->add_option("--answer-us", sim.answer_us, "Modbus TCP: microseconds a unit takes to answer (default 0)")
        ->check(CLI::Range(0L, 10'000'000L));
    simulate->add_option("--tick", o.tick, "counter increment period (default 100ms)");
    simulate->add_option(
        "--config", o.config,
        "serve the units of this configuration's Modbus devices, each point holding a plausible value");
    return simulate;
}

CLI::App* add_scan(CLI::App& app, fieldlink::cli::ScanOptions& o) {
    auto* scan = app.add_subcommand("scan", "find the Modbus units on a serial line or behind a TCP host (reads only)");
    scan->add_option("--rtu", o.rtu, "serial device to scan (tries the usual baud rates and parities)");
    scan->add_option("--tcp", o.tcp, "Modbus TCP HOST[:PORT] to scan for unit ids");
    scan->add_option("--units", o.units, "unit ids to try (default 1-247), e.g. 1-32 or 3,17,20-30");
    scan->add_option("--bauds", o.bauds,
                     "baud rates to try, in order (default 9600,19200,38400,115200,57600,4800,2400)")
        ->delimiter(',');
    scan->add_option("--parities", o.parities, "parities to try at each baud rate, in order (default NEO)");
    scan->add_option("--timeout", o.timeout, "time a unit has to answer (default 100ms serial, 200ms TCP)");
    scan->add_flag("--all-settings", o.all_settings, "keep trying line settings after units answered at one");
    scan->add_flag("--yaml", o.yaml, "print a draft configuration instead of the table (the table goes to stderr)");
    scan->add_option("-o,--output", o.output, "also write the draft configuration to this file");
    scan->add_option("--cloud", o.cloud, "name of the cloud in the draft configuration (default: cloud)");
    return scan;
}

}  // namespace

static int run(int argc, char** argv) {
    CLI::App app{"fieldlink: tools for the fieldlink gateway"};
    app.set_version_flag("-V,--version", "fieldlink " FIELDLINK_VERSION);
    app.require_subcommand(1);

    TokenOptions tok;
    auto* token = app.add_subcommand("token", "print a OneNET token (the MQTT password)");
    token->add_option("-p,--product", tok.product, "product id")->required();
    token->add_option("-d,--device", tok.device, "device name (omit for a product-level token)");
    token->add_option("-k,--key", tok.key, "device key or product access key (Base64)")->required();
    token->add_option("-m,--method", tok.method, "md5, sha1 or sha256")
        ->check(CLI::IsMember({"md5", "sha1", "sha256"}));
    token->add_option("-e,--expiry", tok.expiry, "absolute expiry, Unix seconds");
    token->add_option("--ttl", tok.ttl, "expiry relative to now (default 365d)");

    SimulateOptions sim;
    auto* simulate = add_simulate(app, sim);
    ImportOptions imp;
    auto* import = add_import(app, imp);

    std::string status_config, status_dir;
    auto* status = app.add_subcommand("status", "show queues, rates and drops of the running gateway");
    status->add_option("-c,--config", status_config,
                       "configuration file (its gateway.status_dir, else data_dir, is used)");
    status->add_option("--data-dir", status_dir, "data directory (default: from --config, else /var/lib/fieldlink)");
    bool status_values = false;
    status->add_flag("--values", status_values, "also every point's latest value, quality and age");

    fieldlink::DaemonOptions check;
    auto* check_cmd = app.add_subcommand("check", "validate a configuration file");
    check_cmd->add_option("config", check.config_file, "configuration file")->required();
    check_cmd->add_flag("--plan", check.plan, "also print the read plan");
    check_cmd->add_option("--plugin-dir", check.plugin_dir, "driver plugin directory");

    bool ports_json = false;
    auto* ports = app.add_subcommand("ports", "list the serial ports with their USB identities");
    ports->add_flag("--json", ports_json, "print JSON");

    fieldlink::cli::ScanOptions scan_opts;
    auto* scan = add_scan(app, scan_opts);

    if (auto rc = fieldlink::cli::parse(app, argc, argv)) return *rc;
    if (*scan) return fieldlink::cli::run_scan(scan_opts);
    if (*ports) return fieldlink::cli::print_ports(ports_json);
    if (*token) return run_token(tok);
    if (*import) return fieldlink::cli::run_import(imp.format, imp.file, imp.out, imp.cloud);
    if (*simulate) return run_simulate(sim.server, sim.tick, sim.config, simulate->count("--units") > 0);
    if (*status) return run_status(status_config, status_dir, status_values);
    check.check = true;
    return fieldlink::run_daemon(check);
}

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {  // a bug (out of memory, a library's exception): say so, exit 1
        std::cerr << "fieldlink: internal error: " << e.what() << '\n';
        return 1;
    }
}
