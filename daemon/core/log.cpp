#include "log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>

#include <cstdlib>
#include <mutex>

namespace fieldlink::core {
namespace {

std::mutex g_mutex;
spdlog::sink_ptr g_sink;
spdlog::level::level_enum g_level = spdlog::level::info;

spdlog::sink_ptr sink() {
    if (!g_sink) {
        if (std::getenv("JOURNAL_STREAM")) {
            g_sink = std::make_shared<spdlog::sinks::systemd_sink_mt>("fieldlinkd");
        } else {
            g_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
            g_sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
        }
    }
    return g_sink;
}

}  // namespace

void init_logging(const std::string& level) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_level = spdlog::level::from_str(level);
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
}

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (auto l = spdlog::get(component)) return l;
    auto l = std::make_shared<spdlog::logger>(component, sink());
    l->set_level(g_level);
    l->flush_on(spdlog::level::info);
    spdlog::register_logger(l);
    return l;
}

}  // namespace fieldlink::core
