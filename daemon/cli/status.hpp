#pragma once

#include <string>

namespace fieldlink::cli {

// Prints the daemon's status.json from `data_dir` as a table. Exit status 0, or 1 when there is
// no status (daemon never ran) and 3 when it is stale (the daemon is not running).
int print_status(const std::string& data_dir);

}  // namespace fieldlink::cli
