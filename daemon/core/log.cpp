#include "log.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <syslog.h>

#include <cstdlib>
#include <mutex>

#include "systemd.hpp"

namespace fieldlink::core {
namespace {

// The journal, through libsystemd when systemd started us: each line with its priority and the
// component (logger) as a field of its own.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        int priority = LOG_INFO;
        switch (msg.level) {
            case spdlog::level::trace:
            case spdlog::level::debug:
                priority = LOG_DEBUG;
                break;
            case spdlog::level::info:
                priority = LOG_INFO;
                break;
            case spdlog::level::warn:
                priority = LOG_WARNING;
                break;
            case spdlog::level::err:
                priority = LOG_ERR;
                break;
            case spdlog::level::critical:
                priority = LOG_CRIT;
                break;
            default:
                break;
        }
        const std::string component(msg.logger_name.data(), msg.logger_name.size());
        systemd::journal_send(priority, "[" + component + "] " + std::string(msg.payload.data(), msg.payload.size()),
                              component);
    }
    void flush_() override {}
};

// Process-wide logging state, guarded by g_mutex.
// NOLINTBEGIN(cppcoreguidelines-avoid-non-const-global-variables)
std::mutex g_mutex;
spdlog::sink_ptr g_sink;
std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> g_recent;
spdlog::level::level_enum g_level = spdlog::level::info;
// NOLINTEND(cppcoreguidelines-avoid-non-const-global-variables)

spdlog::sink_ptr sink() {
    if (!g_sink) {
        if (systemd::journal()) {
            g_sink = std::make_shared<JournalSink>();
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
    if (!g_recent) {
        g_recent = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(50);
        g_recent->set_level(spdlog::level::warn);
        g_recent->set_pattern("%Y-%m-%dT%H:%M:%S %l [%n] %v");
    }
    auto l = std::make_shared<spdlog::logger>(component, spdlog::sinks_init_list{sink(), g_recent});
    l->set_level(g_level);
    l->flush_on(spdlog::level::info);
    spdlog::register_logger(l);
    return l;
}

std::vector<std::string> recent_problems() {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> recent;
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        recent = g_recent;
    }
    return recent ? recent->last_formatted() : std::vector<std::string>{};
}

}  // namespace fieldlink::core
