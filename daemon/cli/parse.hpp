// CLI11 parsing with fieldlink's exit codes: --help/--version exit 0, bad usage exits 2.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

namespace fieldlink::cli {

// Returns an exit status when the program should stop now (help, version, usage error).
inline std::optional<int> parse(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return 2;
    }
    return std::nullopt;
}

}  // namespace fieldlink::cli
