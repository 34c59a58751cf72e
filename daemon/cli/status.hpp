#pragma once

#include <string>

namespace fieldlink::cli {

// Prints the daemon's status.json from `data_dir` as a table. Exit status 0, or 1 when there is
// no status (daemon never ran) and 3 when it is stale (the daemon is not running).
// With `values`, also every point's latest value, its quality and age (the status page's table).
int print_status(const std::string& data_dir, bool values = false);

}  // namespace fieldlink::cli
