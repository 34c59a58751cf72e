// fieldlinkd: the gateway daemon. All logic lives in the core library (app.cpp).
#include <malloc.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "app.hpp"
#include "cli/parse.hpp"

#ifndef FIELDLINK_VERSION
#define FIELDLINK_VERSION "0.0.0"
#endif

namespace {

int run(int argc, char** argv) {
    // One malloc arena: bus threads allocate the batches the north thread frees, and per-thread
    // arenas then grow and shrink all the time (an mprotect per batch) and hold more memory.
    mallopt(M_ARENA_MAX, 1);
    CLI::App app{"fieldlinkd: Modbus/serial to cloud IoT gateway daemon"};
    fieldlink::DaemonOptions opts;
    app.add_option("-c,--config", opts.config_file, "configuration file (YAML)")->required();
    app.add_flag("--check", opts.check, "validate the configuration and exit");
    app.add_flag("--plan", opts.plan, "print each device's coalesced read requests and exit");
    app.add_option("--plugin-dir", opts.plugin_dir, "directory holding the driver plugins (fl_*.so)");
    app.add_option("--log-level", opts.log_level, "trace, debug, info, warn, error (overrides the config)");
    app.set_version_flag("-V,--version", "fieldlinkd " FIELDLINK_VERSION);
    if (auto rc = fieldlink::cli::parse(app, argc, argv)) return *rc;
    return fieldlink::run_daemon(opts);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {  // a bug (out of memory, a library's exception): say so, exit 1
        std::cerr << "fieldlinkd: internal error: " << e.what() << '\n';
        return 1;
    }
}
