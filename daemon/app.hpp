// fieldlinkd's top level: load and validate the configuration, load plugins, start the bus
// workers and the north loop, and serve signals (SIGTERM/SIGINT stop, SIGHUP reload request).
#pragma once

#include <string>

namespace fieldlink {

struct DaemonOptions {
    std::string config_file;
    std::string plugin_dir;  // empty: default
    std::string log_level;   // empty: from the config
    bool check = false;
    bool plan = false;
};

// Exit status: 0 ok, 1 runtime failure, 2 invalid configuration.
int run_daemon(const DaemonOptions& opts);

}  // namespace fieldlink
