#include "log.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <syslog.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <vector>

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

// Every line passes here first: text from outside (a command id, a topic, a device's answer, a
// platform's message) may hold newlines, terminal escapes or invalid UTF-8, and may be huge. Control
// characters become \n, \r, \t or \xNN, bytes that are not UTF-8 \xNN, and a line is cut at
// kMaxLine bytes, saying how much was cut: one message can neither forge a line nor flood the log.
class SafeSink final : public spdlog::sinks::base_sink<std::mutex> {
  public:
    explicit SafeSink(std::vector<spdlog::sink_ptr> sinks) : sinks_(std::move(sinks)) {}

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        const std::string_view in(msg.payload.data(), msg.payload.size());
        if (clean(in)) {
            for (auto& s : sinks_) {
                if (s->should_log(msg.level)) s->log(msg);
            }
            return;
        }
        const std::string text = printable(in, kMaxLine);
        spdlog::details::log_msg copy(msg.time, msg.source, msg.logger_name, msg.level, text);
        copy.thread_id = msg.thread_id;
        for (auto& s : sinks_) {
            if (s->should_log(copy.level)) s->log(copy);
        }
    }
    void flush_() override {
        for (auto& s : sinks_) s->flush();
    }

  private:
    static bool clean(std::string_view in) {
        // (UTF-8 is checked on the slow path)
        return in.size() <= kMaxLine && std::all_of(in.begin(), in.end(), [](char c) {
                   const auto b = static_cast<unsigned char>(c);
                   return b >= 0x20 && b < 0x7F;
               });
    }
    std::vector<spdlog::sink_ptr> sinks_;
};

// Process-wide logging state, guarded by g_mutex.
// NOLINTBEGIN(cppcoreguidelines-avoid-non-const-global-variables)
std::mutex g_mutex;
spdlog::sink_ptr g_sink;
std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> g_recent;
spdlog::sink_ptr g_safe;
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

namespace {

// The length of the whole, shortest-form UTF-8 sequence at in[i] (not a surrogate, at most
// U+10FFFF), or 0.
std::size_t utf8_length(std::string_view in, std::size_t i) {
    const auto b = static_cast<unsigned char>(in[i]);
    const std::size_t n = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b <= 0xDF ? 2 : 0;
    if (n == 0 || i + n > in.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((static_cast<unsigned char>(in[i + k]) & 0xC0) != 0x80) return 0;
    }
    const auto b1 = static_cast<unsigned char>(in[i + 1]);
    if ((b == 0xE0 && b1 < 0xA0) || (b == 0xED && b1 >= 0xA0)) return 0;  // overlong, surrogates
    if ((b == 0xF0 && b1 < 0x90) || (b == 0xF4 && b1 >= 0x90)) return 0;  // overlong, past U+10FFFF
    return n;
}

}  // namespace

std::string printable(std::string_view in, std::size_t cap) {
    static const char* const digits = "0123456789abcdef";
    std::string out;
    out.reserve(std::min(in.size(), cap) + 16);
    std::size_t i = 0;
    while (i < in.size() && out.size() < cap) {
        const auto b = static_cast<unsigned char>(in[i]);
        if (b >= 0x20 && b < 0x7F) {
            out += static_cast<char>(b);
        } else if (b == '\n' || b == '\r' || b == '\t') {
            out += b == '\n' ? "\\n" : b == '\r' ? "\\r" : "\\t";
        } else if (const std::size_t n = b >= 0x80 ? utf8_length(in, i) : 0; n > 0) {
            out.append(in.data() + i, n);
            i += n;
            continue;
        } else {
            out += "\\x";
            out += digits[b >> 4];
            out += digits[b & 0xF];
        }
        ++i;
    }
    if (i < in.size()) out += "... (" + std::to_string(in.size() - i) + " more bytes)";
    return out;
}

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
    if (!g_safe) g_safe = std::make_shared<SafeSink>(std::vector<spdlog::sink_ptr>{sink(), g_recent});
    auto l = std::make_shared<spdlog::logger>(component, g_safe);
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
